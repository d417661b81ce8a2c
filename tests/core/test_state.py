"""The batch CAT kernels: :class:`cat_prom.state.CatState`, :class:`cat_prom.stopping.StopRules` and
:func:`cat_prom.selection.choose` on S rows against one row at a time.

References: each batch result is checked against the same rule applied to one row by
code written here (plain Python loops over items and draws), or against a ``CatSession``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cat_prom import CatSession, Design, ItemBank, grid, selection
from cat_prom.errors import InvalidDataError, InvalidDesignError
from cat_prom.state import BANK_EXHAUSTED, CatState
from cat_prom.stopping import CONTINUE, REASONS, RULES, Row, StopRules, check, code_of


def _bank(n=25, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.8, 2.5, n)
    b = np.sort(rng.normal(0, 1.2, (n, 4)), axis=1)
    content = [["work"] if i % 3 == 0 else (["sleep"] if i % 3 == 1 else ["mood"]) for i in range(n)]
    return ItemBank.from_params(a, b, ["gpcm" if i % 5 == 0 else "grm" for i in range(n)], content=content)


BANK = _bank()


# ----------------------------------------------------------------------------- stop rules
def test_one_definition_per_reason_in_order():
    assert tuple(r.reason for r in RULES) == REASONS
    assert [code_of(r) for r in REASONS] == list(range(1, len(REASONS) + 1)) and CONTINUE == 0


designs = st.fixed_dictionaries({
    "min_items": st.integers(0, 4), "max_items": st.integers(4, 8),
    "se_target": st.one_of(st.none(), st.floats(0.2, 0.6)),
    "se_change": st.one_of(st.none(), st.floats(0.001, 0.05)),
    "classification": st.one_of(st.none(), st.fixed_dictionaries({"threshold": st.floats(-1, 1),
                                                                   "confidence": st.floats(0.6, 0.99)})),
    "screen_stop": st.booleans(),
})


@settings(max_examples=150, deadline=None)
@given(d=designs, seed=st.integers(0, 2 ** 32 - 1), n_asked=st.integers(0, 9), n_declined=st.integers(0, 3))
def test_batch_stop_codes_equal_the_first_rule_of_each_row(d, seed, n_asked, n_declined):
    """StopRules.codes on S rows == the first rule that fires for each row alone (and check())."""
    rng = np.random.default_rng(seed)
    S = 40
    n_answered = max(0, n_asked - n_declined)
    design = Design.from_dict(d)
    rules = StopRules(design, t_mean=50.0, t_sd=10.0)
    se = rng.uniform(0.15, 0.7, S)
    se_prev = np.where(rng.random(S) < 0.3, np.nan, se + rng.normal(0, 0.03, S))
    x = Row(n_asked, n_answered, rng.normal(0, 1.5, S), se, se_prev, rng.random(S) < 0.5, rng.integers(0, 3, S))
    codes = rules.codes(x)
    for i in range(S):
        one = Row(n_asked, n_answered, float(x.theta[i]), float(se[i]), float(se_prev[i]), bool(x.first_healthy[i]),
                  int(x.n_eligible[i]))
        # the rules written out by hand, in the documented order; the gated rules wait for
        # min_items answers and for at least one (no answer: the prior, no evidence)
        gate = n_answered >= max(design.min_items, 1)
        expect = None
        if design.screen_stop and n_asked == 1 and one.first_healthy:
            expect = "screen_negative"
        elif n_asked >= design.max_items:
            expect = "max_items"
        elif gate and design.se_target is not None and one.se <= design.se_target:
            expect = "se_target"
        elif (gate and design.se_change is not None and not math.isnan(one.se_prev)
              and abs(one.se_prev - one.se) < design.se_change):
            expect = "se_change"
        elif gate and design.classification is not None and (
                abs(one.theta - d["classification"]["threshold"]) > rules.z * one.se):
            expect = "classification"
        elif one.n_eligible == 0:
            expect = "bank_exhausted"
        assert codes[i] == (code_of(expect) if expect else CONTINUE), (i, one)
        assert rules.codes(Row(n_asked, n_answered, x.theta[i:i + 1], se[i:i + 1], se_prev[i:i + 1],
                               x.first_healthy[i:i + 1], x.n_eligible[i:i + 1]))[0] == codes[i]  # S = 1
        dec = check(design, n_asked=n_asked, n_answered=n_answered, theta=one.theta, se=one.se,
                    se_prev=None if math.isnan(one.se_prev) else one.se_prev, first_healthy=one.first_healthy,
                    n_eligible=one.n_eligible)
        assert dec.stop == (expect is not None) and dec.reason == expect
        if expect:
            assert dec.detail == rules.decision(codes[i], one).detail and dec.detail


def test_classification_threshold_t_uses_the_bank_metric():
    d = Design.from_dict({"classification": {"threshold_t": 60, "confidence": 0.95}})
    rules = StopRules(d, t_mean=50.0, t_sd=10.0)
    assert rules.threshold == 1.0 and rules.z == pytest.approx(1.959963984540054, rel=1e-12)  # ndtri(0.975)
    assert StopRules(d, t_mean=40.0, t_sd=5.0).threshold == 4.0


# ----------------------------------------------------------------------------- choosing items
def _ref_choose(scores, eligible, rng, method, k, exposure_k, withdrawn):
    """One row, the way a session chose before the batch kernels (cat-prom e45cd30 selection.choose)."""
    idx = np.flatnonzero(eligible)
    if method == "random":
        return int(idx[rng.integers(idx.size)])
    s = scores[idx]
    if method == "none":
        return int(idx[np.argmax(s)])
    if method == "randomesque":
        kk = min(k, idx.size)
        top = idx[np.argpartition(-s, kk - 1)[:kk]] if kk < idx.size else idx
        return int(top[rng.integers(top.size)])
    order = idx[np.argsort(-s, kind="stable")]
    for j in order:
        if rng.random() <= exposure_k[j]:
            return int(j)
        withdrawn[j] = True
    return int(order[-1])


@pytest.mark.parametrize("method", ["none", "random", "randomesque"])
def test_batch_choice_draws_row_by_row_like_single_sessions(method):
    """random and randomesque: S rows from one generator == each row alone, in order, from the same generator."""
    rng = np.random.default_rng(3)
    S, N = 60, 25
    scores = np.round(rng.normal(size=(S, N)), 1)  # ties too
    eligible = rng.random((S, N)) < np.linspace(0.1, 0.9, S)[:, None]
    eligible[np.arange(S), rng.integers(0, N, S)] = True
    for k in (1, 3, 5):
        got, _ = selection.choose(scores, eligible, np.random.default_rng(11), method=method, k=k)
        ref_rng = np.random.default_rng(11)
        ref = [_ref_choose(scores[i], eligible[i], ref_rng, method, k, None, None) for i in range(S)]
        assert got.tolist() == ref


def test_batch_sympson_hetter_one_row_equals_the_walk_and_many_rows_draw_round_by_round():
    rng = np.random.default_rng(5)
    N = 20
    ek = np.where(rng.random(N) < 0.5, rng.uniform(0.05, 0.6, N), 1.0)
    for trial in range(200):
        scores = np.round(rng.normal(size=(1, N)), 1)
        eligible = rng.random((1, N)) < 0.7
        eligible[0, trial % N] = True
        wd = np.zeros((1, N), dtype=bool)
        got, came_up = selection.choose(scores, eligible, np.random.default_rng(trial), method="sympson_hetter",
                                        exposure_k=ek, withdrawn=wd, track=True)
        ref_rng, ref_wd = np.random.default_rng(trial), np.zeros(N, dtype=bool)
        assert got[0] == _ref_choose(scores[0], eligible[0], ref_rng, "sympson_hetter", 5, ek, ref_wd)
        assert np.array_equal(wd[0], ref_wd)
        assert np.array_equal(came_up[0], ref_wd | (np.arange(N) == got[0]))
    # many rows: round m draws one uniform for the m-th ranked item of every row still walking, rows in order
    S = 50
    scores = rng.normal(size=(S, N))
    eligible = rng.random((S, N)) < 0.6
    eligible[:, 0] = True
    wd = np.zeros((S, N), dtype=bool)
    got, _ = selection.choose(scores, eligible, np.random.default_rng(9), method="sympson_hetter", exposure_k=ek,
                              withdrawn=wd)
    order = [list(np.flatnonzero(eligible[i])[np.argsort(-scores[i, eligible[i]], kind="stable")]) for i in range(S)]
    ref, ref_wd, walking, r = [None] * S, np.zeros((S, N), dtype=bool), list(range(S)), 0
    ref_rng = np.random.default_rng(9)
    while walking:
        still = []
        for i in walking:
            j = order[i][r]
            if ref_rng.random() <= ek[j]:
                ref[i] = j
            else:
                ref_wd[i, j] = True
                if r == len(order[i]) - 1:
                    ref[i] = j
                else:
                    still.append(i)
        walking, r = still, r + 1
    assert got.tolist() == ref and np.array_equal(wd, ref_wd)


def test_unknown_exposure_method_is_a_domain_error():
    with pytest.raises(InvalidDesignError, match="exposure method"):
        selection.choose(np.zeros((1, 3)), np.ones((1, 3), dtype=bool), np.random.default_rng(0), method="lottery")
    with pytest.raises(InvalidDesignError, match="criterion"):
        selection.criterion("fisher", BANK.grid(Design().grid_theta()), 0.0)
    tables = BANK.grid(Design().grid_theta())
    with pytest.raises(InvalidDataError, match=r"posterior must have shape \(81,\)"):
        selection.mpwi(tables, 0.0, np.ones(7))
    with pytest.raises(InvalidDataError, match="needs the posterior"):
        selection.kl(tables, 0.0, None)
    with pytest.raises(InvalidDataError, match="theta_hat"):
        selection.mfi(tables, np.nan)


# ----------------------------------------------------------------------------- the state of S CATs
def _drive(state, answers, rng):
    """Run a CatState to the end with answers[i][item]; returns (items, codes, theta) per original row."""
    S = state.size
    items, codes, theta = [None] * S, np.zeros(S, dtype=int), np.zeros(S)

    def retire(c):
        stop = c != 0
        for r in np.flatnonzero(stop):
            i = state.index[r]
            items[i], codes[i], theta[i] = state.items[r, :state.n_asked].tolist(), c[r], state.theta[r]
        state.compact(~stop)

    retire(state.start(rng))
    while state.size:
        j = state.current
        state.answer(j, answers[state.index, j])
        retire(state.stop_codes())
        if state.size:
            state.select(rng)
    return items, codes, theta


@pytest.mark.parametrize("doc", [{}, {"selection": "kl", "content_targets": {"work": 0.5, "sleep": 0.3, "mood": 0.2}},
                                 {"selection": "mepv", "se_change": 0.02, "se_target": None}])
def test_per_row_priors_equal_sessions_with_those_priors(doc):
    """A log prior given per row (e.g. carried over from a previous sitting) acts as that row's design prior.

    The first item is chosen at the mean of the row's prior on the grid: for these priors (at least 4.5 SD
    inside the grid) the nominal mean to 1e-6.
    """
    priors = [(0.0, 1.0), (1.0, 0.8), (-1.2, 0.9), (0.4, 1.1)]
    design = Design.from_dict(doc)
    theta = design.grid_theta()
    lp = np.stack([grid.normal_log_density(theta, m, s) for m, s in priors])
    rng = np.random.default_rng(1)
    answers = rng.integers(0, 5, (len(priors), BANK.n_items))
    state = CatState(BANK, design, len(priors), log_prior=lp)
    assert np.allclose(state.W.sum(axis=1), 1.0)
    np.testing.assert_allclose(state.start_theta, [m for m, _ in priors], atol=1e-6)
    items, codes, th = _drive(state, answers, np.random.default_rng(0))
    for i, (m, s) in enumerate(priors):
        ses = CatSession(BANK, design.merged({"prior": {"mean": m, "sd": s}}), seed=0)
        while not ses.finished:
            ses.answer(ses.current_item.id, int(answers[i, BANK.index(ses.current_item.id)]))
        assert [BANK.ids[j] for j in items[i]] == [e["item_id"] for e in ses.log]
        assert REASONS[codes[i] - 1] == ses.stop_reason
        assert th[i] == pytest.approx(ses.theta, abs=1e-12)


def test_blocked_items_never_offered_and_rows_keep_their_index():
    S = 30
    rng = np.random.default_rng(4)
    blocked = rng.random((S, BANK.n_items)) < 0.5
    blocked[0] = True  # nothing eligible: stops at once
    design = Design.from_dict({"min_items": 0, "max_items": 25, "se_target": None})
    state = CatState(BANK, design, S, blocked=blocked)
    assert (state.n_eligible == (~blocked).sum(axis=1)).all()
    items, codes, _ = _drive(state, rng.integers(0, 5, (S, BANK.n_items)), np.random.default_rng(0))
    assert codes[0] == BANK_EXHAUSTED and items[0] == []
    for i in range(1, S):
        assert not blocked[i, items[i]].any() and len(set(items[i])) == len(items[i])
        assert codes[i] == code_of("bank_exhausted") and len(items[i]) == (~blocked[i]).sum()  # every eligible item


def test_start_item_for_rows_where_it_is_eligible():
    doc = BANK.to_dict()
    doc.pop("content_hash")
    doc["start_item"] = doc["items"][7]["id"]
    bank = ItemBank.from_dict(doc)
    blocked = np.zeros((4, bank.n_items), dtype=bool)
    blocked[2, 7] = True
    state = CatState(bank, Design(), 4, blocked=blocked)
    state.start(np.random.default_rng(0))
    assert state.current.tolist()[:2] == [7, 7] and state.current[3] == 7 and state.current[2] != 7
    other = CatSession(bank, Design(), exclude=[bank.ids[7]], seed=0).current_item.id
    assert bank.ids[state.current[2]] == other


def test_a_bad_log_prior_is_a_domain_error():
    Q = Design().grid_theta().shape[0]
    for bad in (np.zeros(Q - 1), np.zeros((3, Q)), np.full(Q, np.nan), np.full(Q, -np.inf), np.r_[np.inf, np.zeros(Q - 1)]):
        with pytest.raises(InvalidDataError, match="log_prior"):
            CatState(BANK, Design(), 2, log_prior=bad)
    CatState(BANK, Design(), 2, log_prior=np.r_[-np.inf, np.zeros(Q - 1)])  # -inf somewhere is a density too

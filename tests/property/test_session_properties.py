"""Property tests (hypothesis) for CatSession: any bank, any design, any answers.

* no item is offered twice, and a session always stops by ``max_items``;
* replay determinism: ``from_dict(to_dict())`` gives the same θ, SE and next item,
  and both copies continue identically (randomesque and random selection included);
* EAP posterior is normalised and its SD never exceeds the prior SD (a normal
  prior times log-concave GRM/GPCM likelihoods: Brascamp–Lieb).
"""
from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from cat_prom import CatSession, ItemBank
from cat_prom.stopping import REASONS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def banks(draw):
    n = draw(st.integers(2, 12))
    ncat = draw(st.lists(st.integers(2, 5), min_size=n, max_size=n))
    a = draw(st.lists(st.floats(0.4, 3.5), min_size=n, max_size=n))
    kmax = max(ncat)
    b = np.full((n, kmax - 1), np.nan)
    for i, k in enumerate(ncat):
        start = draw(st.floats(-3, 2))
        gaps = draw(st.lists(st.floats(0.2, 1.5), min_size=k - 2, max_size=k - 2))
        b[i, : k - 1] = start + np.concatenate([[0.0], np.cumsum(gaps)])
    models = draw(st.lists(st.sampled_from(["grm", "gpcm"]), min_size=n, max_size=n))
    direction = draw(st.sampled_from(["higher_is_worse", "higher_is_better"]))
    return ItemBank.from_params(np.array(a), b, models, id="prop", direction=direction)


@st.composite
def designs(draw):
    max_items = draw(st.integers(1, 10))
    d = {
        "estimator": draw(st.sampled_from(["eap", "map", "ml", "wle"])),
        "selection": draw(st.sampled_from(["mfi", "mpwi", "kl", "mepv", "random"])),
        "max_items": max_items,
        "min_items": draw(st.integers(0, max_items)),
        "se_target": draw(st.one_of(st.none(), st.floats(0.2, 0.6))),
        "se_change": draw(st.one_of(st.none(), st.floats(0.001, 0.05))),
        "screen_stop": draw(st.booleans()),
        "exposure": draw(st.sampled_from([{"method": "none"}, {"method": "randomesque", "k": 2},
                                          {"method": "randomesque", "k": 5}, {"method": "sympson_hetter"}])),
        "grid": {"min": -6, "max": 6, "points": draw(st.sampled_from([21, 41, 81]))},
    }
    if draw(st.booleans()):
        d["classification"] = {"threshold_t": draw(st.floats(35, 65)), "confidence": 0.9}
    return d


# answers: a category fraction in [0, 1] (mapped to the item's categories), or None to decline
answers = st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=12, max_size=12)


def _value(item, frac):
    return item.values[min(int(frac * item.n_categories), item.n_categories - 1)]


def _drive(s, ans, start=0, limit=None):
    k = start
    while not s.finished and (limit is None or k < limit):
        it = s.current_item
        f = ans[k % len(ans)]
        s.decline(it.id) if f is None else s.answer(it.id, _value(it, f))
        k += 1
    return k


@SETTINGS
@given(bank=banks(), design=designs(), ans=answers, seed=st.integers(0, 2 ** 32))
def test_no_item_twice_and_stops_by_max_items(bank, design, ans, seed):
    s = CatSession(bank, design, seed=seed)
    seen = []
    while not s.finished:
        it = s.current_item
        assert it.id not in seen
        seen.append(it.id)
        f = ans[len(seen) % len(ans)]
        s.decline(it.id) if f is None else s.answer(it.id, _value(it, f))
        assert s.n_asked <= design["max_items"]
    assert s.finished and s.stop_reason in REASONS and s.current_item is None
    assert s.n_asked <= min(design["max_items"], bank.n_items)
    if s.stop_reason == "bank_exhausted":
        assert s.n_asked == bank.n_items
    if s.stop_reason in ("se_target", "se_change", "classification"):
        assert s.n_answered >= design["min_items"]
    assert np.isfinite(s.theta) and np.isfinite(s.se) and s.se >= 0


@SETTINGS
@given(bank=banks(), design=designs(), ans=answers, seed=st.integers(0, 2 ** 32), cut=st.integers(0, 8))
def test_replay_determinism(bank, design, ans, seed, cut):
    s = CatSession(bank, design, seed=seed)
    k = _drive(s, ans, limit=cut)
    r = CatSession.from_dict(bank, json.loads(json.dumps(s.to_dict())))
    assert (r.theta, r.se, r.finished, r.stop_reason) == (s.theta, s.se, s.finished, s.stop_reason)
    assert (r.current_item and r.current_item.id) == (s.current_item and s.current_item.id)
    # continue both with identical answers: identical items, estimates and random draws
    while not s.finished:
        assert r.current_item.id == s.current_item.id
        f = ans[k % len(ans)]
        for x in (s, r):
            x.decline(x.current_item.id) if f is None else x.answer(x.current_item.id, _value(x.current_item, f))
        assert (r.theta, r.se) == (s.theta, s.se)
        k += 1
    assert r.finished and r.result() == s.result() and r.to_dict() == s.to_dict()


@SETTINGS
@given(bank=banks(), ans=answers, seed=st.integers(0, 2 ** 32), sd=st.floats(0.5, 2.0),
       mean=st.floats(-1.5, 1.5))
def test_eap_posterior_normalised_and_se_below_prior_sd(bank, ans, seed, sd, mean):
    design = {"max_items": 12, "se_target": None, "prior": {"mean": mean, "sd": sd},
              "grid": {"min": -8, "max": 8, "points": 161}}
    s = CatSession(bank, design, seed=seed)
    grid = s.design.grid_theta()
    k = 0
    while not s.finished:
        it = s.current_item
        f = ans[k % len(ans)]
        s.decline(it.id) if f is None else s.answer(it.id, _value(it, f))
        k += 1
        p = s.posterior
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        assert_allclose(p.sum(), 1.0, rtol=1e-12)  # normalised
        assert_allclose(p @ grid, s.theta, rtol=1e-12, atol=1e-12)  # EAP is the posterior mean
        # normal prior x log-concave likelihood: Var(theta | x) <= prior variance (Brascamp–Lieb);
        # slack 1e-6 for the finite grid
        assert s.se <= sd * (1 + 1e-6)

"""Previous-sitting prior (cat_prom.priors): construction, design keys, sessions, replay, drift estimate."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import stats

from cat_prom import Battery, CatSession
from cat_prom.calibration import simulate_responses
from cat_prom.design import Design
from cat_prom.errors import InvalidDataError, InvalidDesignError
from cat_prom.grid import nodes
from cat_prom.priors import PreviousSitting, estimate_drift_sd, previous_log_prior, prior_report

from test_session import make_bank

BANK = make_bank(25, seed=3, id="pi")
OTHER = make_bank(20, seed=4, id="pf")
THETA = nodes(-6, 6, 81)
PREV = {"type": "previous", "mean": 0.0, "sd": 1.0, "drift_sd_per_week": 0.2, "mixture_weight": 0.7, "switch_at": 0.5,
        "confirm_below": 0.2}


def test_mixture_matches_scipy_densities():
    prev = PreviousSitting(theta=1.2, se=0.3, elapsed_days=28.0)
    lp = previous_log_prior(THETA, PREV, prev)
    # reference: scipy.stats.norm densities, each normalised over the nodes, mixed 0.7/0.3; rtol 1e-12
    sd = math.sqrt(0.3 ** 2 + 0.2 ** 2 * 4.0)  # closed form: SE² + drift² · weeks, 28 days = 4 weeks
    f1 = stats.norm.pdf(THETA, 1.2, sd)
    f0 = stats.norm.pdf(THETA, 0.0, 1.0)
    ref = 0.7 * f1 / f1.sum() + 0.3 * f0 / f0.sum()
    assert_allclose(np.exp(lp), ref, rtol=1e-12, atol=1e-300)
    assert prior_report(PREV, prev)["component"] == {"mean": 1.2, "sd": sd}


def test_weight_one_is_the_widened_normal():
    prev = PreviousSitting(theta=-0.5, se=0.4, elapsed_days=0.0)
    lp = previous_log_prior(THETA, dict(PREV, mixture_weight=1.0), prev)
    ref = stats.norm.logpdf(THETA, -0.5, 0.4)  # no elapsed time: the previous SE alone
    assert_allclose(lp - lp.max(), ref - ref.max(), atol=1e-10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(-2.5, 2.5), st.floats(0.2, 0.8), st.floats(0, 120), st.floats(0.05, 0.95),
       st.lists(st.integers(0, 4), min_size=1, max_size=6))
def test_mixture_posterior_mean_between_components(theta_prev, se, days, w, answers):
    """A mixture prior's posterior is the mixture of the two components' posteriors (weights updated by
    their evidence), so its mean lies between the previous-only and the population-only posterior means."""
    prior = dict(PREV, mixture_weight=w)
    prev = PreviousSitting(theta_prev, se, days)
    lik = sum(BANK.grid(THETA).log_p_nkq[j, k] for j, k in enumerate(answers))
    def mean(lp):
        p = np.exp(lp - lp.max())
        return float(p @ THETA / p.sum())
    m_mix = mean(previous_log_prior(THETA, prior, prev) + lik)
    m_prev = mean(previous_log_prior(THETA, dict(prior, mixture_weight=1.0), prev) + lik)
    m_pop = mean(stats.norm.logpdf(THETA) + lik)
    assert min(m_prev, m_pop) - 1e-9 <= m_mix <= max(m_prev, m_pop) + 1e-9


def test_prior_gives_way_to_a_flare():
    """A patient stable at θ = -0.5 last week answers as if at +1.5: the mixture's estimate follows the
    answers far more than a previous-only prior does."""
    answers = simulate_responses(np.full(200, 1.5), BANK, np.random.default_rng(5))
    prev = {"theta": -0.5, "se": 0.3, "elapsed_days": 7}
    err = {}
    for w in (1.0, 0.7):
        e = []
        for row in answers:
            s = CatSession(BANK, {"prior": dict(PREV, mixture_weight=w), "se_target": None, "max_items": 8}, seed=1,
                           previous=prev)
            while not s.finished:
                s.answer(s.current_item.id, int(row[BANK.index(s.current_item.id)]))
            e.append(s.theta - 1.5)
        err[w] = float(np.mean(e))
    assert err[0.7] > err[1.0] + 0.3 and abs(err[0.7]) < 0.5, err


class TestJumpAlternative:
    """``jump_sd``: the mixture's second component is the previous component widened by a sudden change."""

    def test_matches_scipy_densities(self):
        prev = PreviousSitting(theta=1.2, se=0.3, elapsed_days=28.0)
        prior = dict(PREV, jump_sd=0.9)
        lp = previous_log_prior(THETA, prior, prev)
        # reference: scipy.stats.norm densities normalised over the nodes, mixed 0.7/0.3; rtol 1e-12
        sd = math.sqrt(0.3 ** 2 + 0.2 ** 2 * 4.0)  # closed form: SE² + drift² · weeks
        sd_alt = math.sqrt(sd ** 2 + 0.9 ** 2)  # closed form: plus the jump variance
        f1, f0 = stats.norm.pdf(THETA, 1.2, sd), stats.norm.pdf(THETA, 1.2, sd_alt)
        assert_allclose(np.exp(lp), 0.7 * f1 / f1.sum() + 0.3 * f0 / f0.sum(), rtol=1e-12, atol=1e-300)
        rep = prior_report(prior, prev)
        assert rep["jump_sd"] == 0.9 and rep["alternative"] == {"mean": 1.2, "sd": pytest.approx(sd_alt, rel=1e-15)}
        assert "jump_sd" not in prior_report(PREV, prev)  # absent: the population prior, reported as before

    def test_change_probability_matches_quadrature(self):
        """P(change) after three answers against scipy.integrate.quad of the continuous densities times the
        likelihood (grid of 81 nodes on [-6, 6] against adaptive quadrature: atol 2e-3)."""
        from scipy.integrate import quad
        from cat_prom import irt
        from cat_prom.priors import change_probability, mixture_parts
        prior = dict(PREV, jump_sd=1.0)
        prev = PreviousSitting(theta=-0.4, se=0.3, elapsed_days=14.0)
        answers = [(0, 4), (1, 3), (2, 4)]
        lik_grid = sum(BANK.grid(THETA).log_p_nkq[j, k] for j, k in answers)
        log_mix, log_alt = mixture_parts(THETA, prior, prev)
        p_grid = change_probability(log_mix + lik_grid, log_mix, log_alt, 0.7)
        sd = math.sqrt(0.3 ** 2 + 0.2 ** 2 * 2.0)
        def lik(t):
            lp = irt.log_probabilities(np.array([t]), BANK.params)[0]
            return math.exp(sum(lp[j, k] for j, k in answers))
        z_prev = quad(lambda t: lik(t) * stats.norm.pdf(t, -0.4, sd), -8, 8, points=[-0.4], limit=200)[0]
        z_alt = quad(lambda t: lik(t) * stats.norm.pdf(t, -0.4, math.hypot(sd, 1.0)), -8, 8, limit=200)[0]
        assert_allclose(p_grid, 0.3 * z_alt / (0.7 * z_prev + 0.3 * z_alt), atol=2e-3)
        assert p_grid > 0.5  # answers at the top of the bank, last time -0.4: a change

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.floats(-2.5, 2.5), st.floats(0.2, 0.8), st.floats(0, 120), st.floats(0.05, 0.95), st.floats(0.2, 2.0))
    def test_prior_symmetric_about_last_sitting(self, theta_prev, se, days, w, jump):
        """Both components are centred at the last sitting, so before any answer the prior's mean is θ_prev and
        its variance is the closed form of a two-normal mixture with a common mean, w·s₁² + (1-w)·s₂². On a wide
        grid (241 nodes on [-12, 12], at least 4 SD of margin) truncation and spacing stay within 1e-3 / 2 %."""
        theta = nodes(-12, 12, 241)
        prev = PreviousSitting(theta_prev, se, days)
        p = np.exp(previous_log_prior(theta, dict(PREV, mixture_weight=w, jump_sd=jump), prev))
        p /= p.sum()
        m = float(p @ theta)
        s1 = math.sqrt(se ** 2 + 0.2 ** 2 * days / 7)
        s2 = math.hypot(s1, jump)
        assert abs(m - theta_prev) < 1e-3
        assert_allclose(float(p @ (theta - m) ** 2), w * s1 ** 2 + (1 - w) * s2 ** 2, rtol=0.02, atol=1e-3)

    def test_gives_way_sooner_than_population_alternative(self):
        """A patient last seen at θ = 1.0 who flares to 2.0: with jump_sd the prior is dropped more often after
        the same answers, and the estimate is less biased (simulated answers, 200 simulees, seed 7)."""
        answers = simulate_responses(np.full(200, 2.0), BANK, np.random.default_rng(7))
        prev = {"theta": 1.0, "se": 0.3, "elapsed_days": 14}
        out = {}
        for jump in (None, 1.0):
            sw, err = 0, []
            for row in answers:
                s = CatSession(BANK, {"prior": dict(PREV, mixture_weight=0.8, drift_sd_per_week=0.05, jump_sd=jump),
                                      "se_target": None, "max_items": 4}, seed=1, previous=prev)
                while not s.finished:
                    s.answer(s.current_item.id, int(row[BANK.index(s.current_item.id)]))
                sw += s.switched_after is not None
                err.append(s.theta - 2.0)
            out[jump] = (sw, float(np.mean(err)))
        assert out[1.0][0] > out[None][0] and abs(out[1.0][1]) < abs(out[None][1]), out

    def test_design_key(self):
        d = Design.from_dict({"prior": {"type": "previous", "jump_sd": 1}})
        assert d.prior["jump_sd"] == 1.0 and Design.from_dict(d.to_dict()) == d
        assert "jump_sd" not in Design.from_dict({"prior": {"type": "previous", "jump_sd": None}}).prior
        for bad, words in ((0, "must be > 0"), (6, "must be <= 5"), ("1", "must be a number")):
            with pytest.raises(InvalidDesignError, match=words):
                Design.from_dict({"prior": {"type": "previous", "jump_sd": bad}})

    def test_replay_exact(self):
        prior = dict(PREV, jump_sd=1.0)
        s = CatSession(BANK, {"prior": prior}, seed=8, previous={"theta": -1.0, "se": 0.3, "elapsed_days": 14})
        for k in (4, 4, 3):
            s.answer(s.current_item.id, k)
        r = CatSession.from_dict(BANK, json.loads(json.dumps(s.to_dict())))
        assert r.result() == s.result() and r.result()["prior"]["jump_sd"] == 1.0


class TestDesignKeys:
    def test_defaults_and_roundtrip(self):
        d = Design.from_dict({"prior": {"type": "previous"}})
        assert dict(d.prior) == {"mean": 0.0, "sd": 1.0, "type": "previous", "drift_sd_per_week": 0.05,
                                 "mixture_weight": 0.8, "switch_at": 0.5, "confirm_below": 0.2}
        assert Design.from_dict(d.to_dict()) == d
        # the population prior keeps its old document: no 'type' key
        assert Design.from_dict({"prior": {"type": "normal", "sd": 2}}).to_dict()["prior"] == {"mean": 0.0, "sd": 2.0}

    @pytest.mark.parametrize("prior, words", [
        ({"type": "previous", "mixture_weight": 0}, "prior.mixture_weight' must be > 0"),
        ({"type": "previous", "mixture_weight": 1.5}, "prior.mixture_weight' must be <= 1"),
        ({"type": "previous", "drift_sd_per_week": -0.1}, "prior.drift_sd_per_week' must be >= 0"),
        ({"type": "previous", "drift": 0.1}, "unknown key prior.drift"),
        ({"type": "normal", "mixture_weight": 0.5}, "unknown key prior.mixture_weight"),
        ({"type": "last"}, "got type 'last'"),
    ])
    def test_bad_prior(self, prior, words):
        with pytest.raises(InvalidDesignError) as e:
            Design.from_dict({"prior": prior})
        assert words in str(e.value)

    def test_needs_eap(self):
        with pytest.raises(InvalidDesignError, match="needs the EAP estimator"):
            Design.from_dict({"estimator": "map", "prior": {"type": "previous"}})


class TestSession:
    def test_without_previous_is_todays_cat(self):
        a = CatSession(BANK, {"prior": {"type": "previous"}}, seed=3)
        b = CatSession(BANK, seed=3)
        for k in (3, 1, 4, 2):
            a.answer(a.current_item.id, k)
            b.answer(b.current_item.id, k)
            assert (a.theta, a.se) == (b.theta, b.se)
        assert a.result()["prior"]["type"] == "population"

    def test_previous_ignored_by_population_design(self):
        s = CatSession(BANK, seed=3, previous={"theta": 2.0, "se": 0.3, "elapsed_days": 7})
        assert s.result()["prior"] == {"type": "population", "population": {"mean": 0.0, "sd": 1.0}}
        assert s.theta == CatSession(BANK, seed=3).theta

    def test_prior_used_reported_and_replayed_exactly(self):
        prev = {"theta": 1.0, "se": 0.35, "elapsed_days": 21}
        s = CatSession(BANK, {"prior": PREV, "exposure": {"method": "randomesque", "k": 3}}, seed=8, previous=prev)
        # before any answer the estimate is the prior's mean, on the grid
        p = np.exp(previous_log_prior(THETA, PREV, PreviousSitting(1.0, 0.35, 21.0)))
        assert_allclose(s.theta, p @ THETA / p.sum(), rtol=1e-12)
        for k in (3, 3, 2):
            s.answer(s.current_item.id, k)
        d = json.loads(json.dumps(s.to_dict()))
        assert d["previous"] == {"theta": 1.0, "se": 0.35, "elapsed_days": 21.0}
        r = CatSession.from_dict(BANK, d)
        assert r.result() == s.result() and r.current_item.id == s.current_item.id
        rep = s.result()["prior"]
        assert rep["type"] == "previous" and rep["mixture_weight"] == 0.7 and rep["previous"]["theta"] == 1.0

    @pytest.mark.parametrize("prev", [{"theta": 1.0, "se": 0.0, "elapsed_days": 1}, {"theta": 1.0, "se": 0.3},
                                      {"theta": "1", "se": 0.3, "elapsed_days": 1},
                                      {"theta": 1.0, "se": 0.3, "elapsed_days": -2}])
    def test_bad_previous(self, prev):
        with pytest.raises(InvalidDataError):
            CatSession(BANK, {"prior": PREV}, previous=prev)

    def test_battery_passes_previous_per_bank_and_replays(self):
        entries = [(BANK, {"prior": PREV}), (OTHER, {"prior": PREV})]
        prev = {"pi": {"theta": 0.8, "se": 0.3, "elapsed_days": 14}}
        b = Battery(entries, seed=4, previous=prev)
        assert [s.result()["prior"]["type"] for s in b.sessions] == ["previous", "population"]
        for _ in range(5):
            b.answer(b.current_item.id, 2)
        r = Battery.from_dict({"pi": BANK, "pf": OTHER}, json.loads(json.dumps(b.to_dict())))
        assert r.results() == b.results()
        with pytest.raises(InvalidDesignError, match="not in the battery"):
            Battery(entries, previous={"zz": prev["pi"]})


def test_drift_estimate_recovers_known_drift():
    """EAP scores (population prior) of a 25-item bank at two sittings four weeks apart, true θ a random walk
    with drift SD 0.15 or 0.30 per week: the disattenuated moment estimate recovers it (n = 20000 pairs;
    measured 0.141 and 0.282, a small downward bias from EAP's non-linear shrinkage; tolerance 0.025 and
    0.04). Without drift the estimate is about 0."""
    from cat_prom import scoring
    rng = np.random.default_rng(1)
    n = 20000
    for delta, tol in ((0.0, 0.03), (0.15, 0.025), (0.30, 0.04)):
        t1 = rng.normal(0, 1, n)
        t2 = t1 + rng.normal(0, delta * 2.0, n)  # 28 days = 4 weeks: SD 2·delta
        r1 = scoring.eap(simulate_responses(t1, BANK, rng), BANK.params)
        r2 = scoring.eap(simulate_responses(t2, BANK, rng), BANK.params)
        est = estimate_drift_sd(r1.theta, r1.se, r2.theta, r2.se, np.full(n, 28.0))
        assert abs(est["drift_sd_per_week"] - delta) < tol, (delta, est)
    with pytest.raises(InvalidDataError):
        estimate_drift_sd([0.0] * 20, [0.3] * 20, [0.1] * 20, [0.3] * 20, [0.0] * 20)


class TestSequentialTest:
    """P(change), the switch to the population prior, and the wait for confirmation."""

    def test_change_probability_against_direct_marginals(self):
        from cat_prom.priors import change_probability, mixture_parts
        prev = PreviousSitting(theta=-0.5, se=0.3, elapsed_days=14.0)
        lik = sum(BANK.grid(THETA).log_p_nkq[j, k] for j, k in enumerate([4, 3, 4]))
        log_mix, log_pop = mixture_parts(THETA, PREV, prev)
        # reference: component marginal likelihoods with scipy densities normalised over the nodes
        sd = math.sqrt(0.3 ** 2 + 0.2 ** 2 * 2.0)
        f1, f0 = stats.norm.pdf(THETA, -0.5, sd), stats.norm.pdf(THETA)
        L = np.exp(lik)
        m1, m0 = (L * f1 / f1.sum()).sum(), (L * f0 / f0.sum()).sum()
        ref = 0.3 * m0 / (0.3 * m0 + 0.7 * m1)
        got = change_probability(lik + log_mix + 12.3, log_mix, log_pop, 0.7)  # any constant in the log posterior
        assert_allclose(got, ref, rtol=1e-10)
        assert_allclose(change_probability(log_mix, log_mix, log_pop, 0.7), 0.3, rtol=1e-12)  # no answers: 1 - w

    def test_switch_then_scored_as_a_first_visit(self):
        prev = {"theta": -1.0, "se": 0.3, "elapsed_days": 14}
        s = CatSession(BANK, {"prior": PREV, "se_target": None, "max_items": 6}, seed=2, previous=prev)
        answers = []
        while not s.finished:
            answers.append(s.current_item.id)
            s.answer(s.current_item.id, 4)  # the most severe answers: far from θ = -1
        assert s.switched_after is not None and s.result()["prior"]["switched_after"] == s.switched_after
        lp = stats.norm.logpdf(THETA) + sum(BANK.grid(THETA).log_p_nkq[BANK.index(i), 4] for i in answers)
        w = np.exp(lp - lp.max())
        assert_allclose(s.theta, w @ THETA / w.sum(), rtol=1e-9)  # population prior times the answers

    def test_precision_stop_waits_for_confirmation(self):
        prev = {"theta": 0.3, "se": 0.3, "elapsed_days": 14}
        prior = dict(PREV, confirm_below=0.05)
        s = CatSession(BANK, {"prior": prior, "min_items": 1, "max_items": 15, "se_target": 0.4}, seed=2,
                       previous=prev)
        while not s.finished:
            s.answer(s.current_item.id, 2)
        r = s.result()
        if r["stop_reason"] == "se_target":
            assert r["prior"]["change_probability"] <= 0.05 or r["prior"]["switched_after"] is not None
        assert r["n_answered"] > 1  # SE 0.4 is reached before any answer, but the test was open

    @pytest.mark.parametrize("bad, words", [({"switch_at": 0.2, "confirm_below": 0.3}, "must be below"),
                                            ({"switch_at": 0}, "switch_at' must be > 0")])
    def test_bad_thresholds(self, bad, words):
        with pytest.raises(InvalidDesignError, match=words):
            Design.from_dict({"prior": {"type": "previous", **bad}})


class TestChangeCall:
    """``change_confidence``: precision stops wait while the reliable-change call against the last sitting is open."""

    def test_closed_form_points(self):
        from cat_prom.priors import change_call_open
        prev = PreviousSitting(theta=0.0, se=0.3, elapsed_days=14.0)
        # closed form: c = 1.96·√(0.3² + 0.3²) = 0.8315, z(80 %) = Φ⁻¹(0.9) = 1.2816, z·SE = 0.3845:
        # open for |θ̂ - θ_prev| in [0.4470, 1.2160]
        c, zse = 1.96 * math.sqrt(0.18), stats.norm.ppf(0.9) * 0.3
        for theta, is_open in ((0.3, False), (c - zse + 1e-6, True), (0.8, True), (-0.8, True),
                               (c + zse - 1e-6, True), (1.3, False), (-1.3, False)):
            assert change_call_open(theta, 0.3, prev, 0.8) is is_open, theta
        assert not change_call_open(0.8, 0.3, prev, 0.0)  # confidence 0: never open

    @settings(max_examples=200, deadline=None)
    @given(st.floats(-3, 3), st.floats(0.1, 1.0), st.floats(-3, 3), st.floats(0.1, 0.8), st.floats(0.5, 0.99))
    def test_open_iff_interval_straddles_a_limit(self, theta, se, theta_prev, se_prev, conf):
        """Direct evaluation of the three-category classification (Eggen & Straetmans, 2000): settled when the
        interval θ̂ ± z·SE lies wholly inside (θ_prev - c, θ_prev + c), wholly above θ_prev + c or wholly below
        θ_prev - c; open otherwise (points within 1e-9 of a limit are skipped)."""
        from cat_prom.priors import change_call_open
        z = stats.norm.ppf(0.5 + conf / 2)
        c = 1.96 * math.hypot(se_prev, se)
        lo, hi = theta - z * se, theta + z * se
        edges = (theta_prev - c, theta_prev + c)
        if min(abs(x - e) for x in (lo, hi) for e in edges) < 1e-9:
            return
        settled = (lo > edges[0] and hi < edges[1]) or lo > edges[1] or hi < edges[0]
        assert change_call_open(theta, se, PreviousSitting(theta_prev, se_prev, 7.0), conf) is (not settled)

    def test_precision_stops_wait_for_the_call(self):
        """Simulated patients whose θ moved from 0 to 0.9 (about the reliable-change limit): with the call on, every
        sitting stopped by a precision rule has its call settled, and sittings are never shorter than without it."""
        from cat_prom.priors import change_call_open
        answers = simulate_responses(np.full(60, 0.9), BANK, np.random.default_rng(11))
        prev = {"theta": 0.0, "se": 0.3, "elapsed_days": 14}
        base = dict(PREV, jump_sd=1.0, confirm_below=0.3, switch_at=0.35)
        longer = 0
        for row in answers:
            n = {}
            for conf in (None, 0.8):
                s = CatSession(BANK, {"prior": dict(base, change_confidence=conf), "se_target": 0.35, "max_items": 10},
                               seed=2, previous=prev)
                while not s.finished:
                    s.answer(s.current_item.id, int(row[BANK.index(s.current_item.id)]))
                n[conf] = s.n_answered
                if conf and s.stop_reason in ("se_target", "se_change", "classification"):
                    assert not change_call_open(s.theta, s.se, s.previous, 0.8)
            assert n[0.8] >= n[None]
            longer += n[0.8] > n[None]
        assert longer > 0

    def test_design_key_and_report(self):
        d = Design.from_dict({"prior": {"type": "previous", "change_confidence": 0.8}})
        assert d.prior["change_confidence"] == 0.8 and Design.from_dict(d.to_dict()) == d
        assert "change_confidence" not in Design.from_dict({"prior": {"type": "previous", "change_confidence": 0}}).prior
        with pytest.raises(InvalidDesignError, match="change_confidence' must be <= 0.999"):
            Design.from_dict({"prior": {"type": "previous", "change_confidence": 1}})
        with pytest.raises(InvalidDesignError, match="must be a number"):
            Design.from_dict({"prior": {"type": "previous", "change_confidence": True}})
        s = CatSession(BANK, d, seed=1, previous={"theta": 0.0, "se": 0.3, "elapsed_days": 7})
        assert s.result()["prior"]["change_confidence"] == 0.8

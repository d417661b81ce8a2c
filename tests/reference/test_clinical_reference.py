"""Reference values for the clinical layer: certainty against brute-force integration of the posterior,
GAS T-scores worked by hand from the published formula, change arithmetic against closed forms.

Each value carries its provenance and tolerance beside it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats

from cat_prom import CatSession, ItemBank, irt
from cat_prom.clinical import (DomainScore, change, changes, gas_t_score, prob_beyond, prob_beyond_normal,
                               worse_side)
from cat_prom.errors import InvalidDataError, InvalidGoalError

BANK = ItemBank.load("item_banks/pain-interference.json")
PF = ItemBank.load("item_banks/physical-function.json")


def _session(bank, cats, points=81, seed=1):
    s = CatSession(bank, {"grid": {"min": -6, "max": 6, "points": points}}, seed=seed)
    i = 0
    while not s.finished:
        it = s.current_item
        s.answer(it.id, it.values[cats[i % len(cats)]])
        i += 1
    return s


def _continuous_posterior(session):
    """The session's posterior density as a function of θ (prior × likelihood of its answers), unnormalised."""
    bank = session.bank
    answered = [(bank.index(e["item_id"]), bank.items[bank.index(e["item_id"])].values.index(e["value"]))
                for e in session.log if not e.get("declined")]
    shift = float(session.log_posterior.max())
    mean, sd = session.design.prior["mean"], session.design.prior["sd"]

    def f(t):
        lp = irt.log_probabilities(np.array([t]), bank.params)[0]
        return math.exp(-0.5 * ((t - mean) / sd) ** 2 + sum(lp[j, k] for j, k in answered) - shift)
    return f


@pytest.mark.parametrize("cats", [[3, 2, 3, 4], [0], [4], [1, 2]])
def test_prob_beyond_equals_quadrature_of_the_posterior(cats):
    s = _session(BANK, cats)
    f = _continuous_posterior(s)
    lo, hi = -6.0, 6.0
    # scipy.integrate.quad, epsrel 1e-12, over the grid's own range [-6, 6]
    Z = integrate.quad(f, lo, hi, points=[s.theta], epsabs=0, epsrel=1e-12, limit=200)[0]
    nodes = s.design.grid_theta()
    for c in np.linspace(s.theta - 3 * s.se, s.theta + 3 * s.se, 13):
        ref = integrate.quad(f, c, hi, points=[s.theta] if s.theta > c else None, epsabs=0, epsrel=1e-12,
                             limit=200)[0] / Z
        # spline-interpolated log posterior on 81 nodes: atol 2e-4 (measured <= 3e-5)
        assert_allclose(prob_beyond(s.log_posterior, nodes, c, "above", log=True), ref, atol=2e-4)
        assert_allclose(prob_beyond(s.posterior, nodes, c, "below"), 1 - ref, atol=2e-4)


def test_prob_beyond_converges_with_the_grid():
    errs = []
    for points in (81, 161, 401):
        s = _session(BANK, [3, 2, 3, 4], points=points)
        f = _continuous_posterior(s)
        Z = integrate.quad(f, -6, 6, points=[s.theta], epsabs=0, epsrel=1e-12, limit=200)[0]
        c = s.theta + 0.4 * s.se
        ref = integrate.quad(f, c, 6, epsabs=0, epsrel=1e-12, limit=200)[0] / Z
        errs.append(abs(prob_beyond(s.log_posterior, s.design.grid_theta(), c, log=True) - ref))
    # finer grids: smaller error (401 points: 1e-5, scipy.integrate.quad reference)
    assert errs[2] < errs[0] and errs[2] < 1e-5


def test_prob_beyond_closed_form_normal():
    # a normal posterior N(0.7, 0.3²) sampled on the nodes: P(θ > c) = 1 - Φ((c - 0.7)/0.3), closed form;
    # atol 5e-5 (measured <= 2e-5: the trapezoidal rule on 16 sub-intervals per grid interval)
    nodes = np.linspace(-6, 6, 81)
    lp = -0.5 * ((nodes - 0.7) / 0.3) ** 2
    for c in (-0.2, 0.5, 0.7, 1.0, 1.6):
        assert_allclose(prob_beyond(lp, nodes, c, log=True), stats.norm.sf(c, 0.7, 0.3), atol=5e-5)
    # the ends: everything above the first node, nothing above the last
    assert prob_beyond(lp, nodes, -7.0, log=True) == 1.0 and prob_beyond(lp, nodes, 6.0, log=True) == 0.0


def test_prob_beyond_batch_rows_and_thresholds():
    nodes = np.linspace(-6, 6, 81)
    mus = np.array([-1.0, 0.0, 1.5])
    lp = -0.5 * ((nodes[None, :] - mus[:, None]) / 0.4) ** 2
    got = prob_beyond(lp, nodes, np.array([-1.0, 0.3, 2.0]), log=True)
    # closed form, atol 5e-5 (as above)
    assert_allclose(got, stats.norm.sf([-1.0, 0.3, 2.0], mus, 0.4), atol=5e-5)
    # weights with underflowed zeros in the tails still work (posterior SD 0.1 far from the ends)
    w = np.exp(-0.5 * ((nodes - 4.0) / 0.1) ** 2)
    assert (w == 0).any()
    assert_allclose(prob_beyond(w, nodes, 4.1), stats.norm.sf(4.1, 4.0, 0.1), atol=2e-3)


@pytest.mark.parametrize("bad", [dict(side="over"), dict(nodes=np.array([0.0, 0.0, 1.0])),
                                 dict(posterior=np.zeros(5)), dict(threshold=np.nan),
                                 dict(posterior=np.ones(4))])
def test_prob_beyond_bad_input(bad):
    kw = dict(posterior=np.ones(5), nodes=np.linspace(-1, 1, 5), threshold=0.0, side="above")
    kw.update(bad)
    with pytest.raises(InvalidDataError):
        prob_beyond(kw["posterior"], kw["nodes"], kw["threshold"], kw["side"])


def test_prob_beyond_normal_closed_form():
    # Φ((65 - 60)/4) = Φ(1.25) = 0.894350 (standard normal table)
    assert_allclose(prob_beyond_normal(65.0, 4.0, 60.0, "above"), 0.8943502263331446, rtol=1e-12)
    assert_allclose(prob_beyond_normal(65.0, 4.0, 60.0, "below"), 1 - 0.8943502263331446, rtol=1e-12)
    assert worse_side("higher_is_worse") == "above" and worse_side("higher_is_better") == "below"


def test_domain_score_from_session_uses_the_posterior_in_t_units():
    s = _session(PF, [1, 2])
    d = DomainScore.from_session(s)
    assert d.scored and d.direction == "higher_is_better" and d.severe_t == 30.0
    p, method = d.prob_worse_than(d.t_score)
    # worse = below on a higher-is-better bank; at the estimate itself about one half
    assert method == "posterior" and 0.4 < p < 0.6
    theta_thr = (d.t_score - 3.0 - PF.t_mean) / PF.t_sd
    # the same probability on the θ metric
    assert_allclose(d.prob_worse_than(d.t_score - 3.0)[0],
                    prob_beyond(s.posterior, s.design.grid_theta(), theta_thr, "below"), rtol=1e-9)


# ------------------------------------------------------------------ GAS
# Kiresuk & Sherman (1968); Turner-Stokes (2009), formula as corrected in the 2009 erratum:
# T = 50 + 10·Σwx / sqrt((1 - ρ)Σw² + ρ(Σw)²), ρ = 0.3. Each value worked by hand:
GAS_CASES = [
    # all goals at the expected level: Σwx = 0 -> T = 50 exactly (any weights)
    ([0, 0, 0], None, 50.0),
    ([0, 0], [2, 5], 50.0),
    # symmetric over- and under-achievement cancels: -1 + 0 + 1 = 0 -> 50
    ([-1, 0, 1], None, 50.0),
    # one goal: denominator sqrt(0.7 + 0.3) = 1 -> T = 50 + 10x
    ([2], None, 70.0),
    ([-2], None, 30.0),
    # three equal goals all +1: Σwx = 3, sqrt(0.7·3 + 0.3·9) = sqrt(4.8) -> 50 + 30/2.19089 = 63.6931
    ([1, 1, 1], None, 50 + 30 / math.sqrt(4.8)),
    # three equal goals all -1 (a typical baseline): 50 - 30/sqrt(4.8) = 36.3069
    ([-1, -1, -1], None, 50 - 30 / math.sqrt(4.8)),
    # weights (1, 2, 3), levels (-1, 0, 2): Σwx = 5, Σw² = 14, (Σw)² = 36,
    # sqrt(0.7·14 + 0.3·36) = sqrt(20.6) = 4.53872 -> 50 + 50/4.53872 = 61.0163
    ([-1, 0, 2], [1, 2, 3], 50 + 50 / math.sqrt(20.6)),
]


@pytest.mark.parametrize("levels,weights,expect", GAS_CASES)
def test_gas_worked_examples(levels, weights, expect):
    assert_allclose(gas_t_score(levels, weights), expect, rtol=1e-12)  # same arithmetic: rtol 1e-12


def test_gas_rho_is_configurable():
    # ρ = 0: sqrt(Σw²) -> two goals at +1: 50 + 20/sqrt(2) = 64.1421
    assert_allclose(gas_t_score([1, 1], rho=0.0), 50 + 20 / math.sqrt(2), rtol=1e-12)
    # ρ = 0.5: sqrt(0.5·2 + 0.5·4) = sqrt(3) -> 50 + 20/sqrt(3) = 61.5470
    assert_allclose(gas_t_score([1, 1], rho=0.5), 50 + 20 / math.sqrt(3), rtol=1e-12)
    # equal weights scale out: weights (3, 3) give the unweighted value
    assert_allclose(gas_t_score([1, -2], [3, 3]), gas_t_score([1, -2]), rtol=1e-12)


@pytest.mark.parametrize("levels,weights,rho", [
    ([3], None, 0.3), ([-3], None, 0.3), ([0.5], None, 0.3), ([True], None, 0.3), (["1"], None, 0.3),
    ([], None, 0.3), ([0, 1], [1], 0.3), ([0], [0], 0.3), ([0], [-1], 0.3), ([0], [float("nan")], 0.3),
    ([0], None, 1.0), ([0], None, -0.1),
])
def test_gas_rejects_bad_input(levels, weights, rho):
    with pytest.raises(InvalidGoalError):
        gas_t_score(levels, weights, rho=rho)


# ------------------------------------------------------------------ change
def test_change_closed_form():
    # SE_Δ = sqrt(3² + 4²) = 5 (a 3-4-5 triangle); ΔT = 12 > 1.96·5 = 9.8: reliable, >= MID 5, worse
    c = change(50.0, 3.0, 62.0, 4.0, direction="higher_is_worse", mid=5.0)
    assert c.delta_t == 12.0 and c.se_delta == 5.0 and c.rci == 2.4
    assert c.reliable and c.reaches_mid and c.direction == "worse"
    # ΔT = 9.7 < 9.8: not reliable, still >= MID
    c = change(50.0, 3.0, 59.7, 4.0)
    assert not c.reliable and c.reaches_mid
    # a rise on a higher-is-better bank (physical function) is better
    c = change(40.0, 3.0, 52.0, 4.0, direction="higher_is_better")
    assert c.direction == "better" and c.reliable
    # a fall of 4 with MID 5: not reaching the MID; MID configurable (3)
    assert not change(60.0, 2.0, 56.0, 2.0).reaches_mid
    assert change(60.0, 2.0, 56.0, 2.0, mid=3.0).reaches_mid
    assert change(60.0, 2.0, 56.0, 2.0).direction == "better"


def test_change_bad_input():
    with pytest.raises(InvalidDataError):
        change(50.0, -1.0, 60.0, 3.0)
    with pytest.raises(InvalidDataError):
        change(50.0, 1.0, None, 3.0)
    with pytest.raises(InvalidDataError):
        change(50.0, 1.0, 60.0, 3.0, direction="up")
    with pytest.raises(InvalidDataError):
        change(50.0, 1.0, 60.0, 3.0, mid=0)


def test_changes_skip_not_scored_and_use_baseline():
    r = lambda t, se=3.0: {"status": "scored", "t_score": t, "t_se": se, "direction": "higher_is_worse"}  # noqa: E731
    gap = {"status": "not_scored", "t_score": None, "t_se": None, "direction": "higher_is_worse"}
    out = changes(r(70.0), [r(47.7), r(55.0), gap])
    # previous scored sitting is 55 (the not-scored one is skipped), baseline the first scored, 47.7
    assert out["previous"]["delta_t"] == 15.0 and out["baseline"]["delta_t"] == pytest.approx(22.3)
    assert out["baseline"]["direction"] == "worse" and out["baseline"]["reliable"]
    # a marked baseline replaces the first scored sitting
    assert changes(r(70.0), [r(47.7), r(55.0)], baseline=r(60.0))["baseline"]["delta_t"] == 10.0
    # nothing to compare with, or nothing scored now: None
    assert changes(r(70.0), []) == {"previous": None, "baseline": None}
    assert changes(gap, [r(50.0)]) == {"previous": None, "baseline": None}

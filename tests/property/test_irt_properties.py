"""Property tests for :mod:`cat_prom.irt` with hypothesis.

Parameters are drawn from two regimes: *realistic* (a in [0.3, 4], thresholds
in [-4, 4], theta in [-6, 6]) and *extreme* (a in [0.01, 10], thresholds in
[-10, 10], theta in [-10, 10]). Each property keeps ``max_examples`` modest so
the file runs in a few seconds.
"""
from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from cat_prom import irt

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REGIMES = {
    "realistic": dict(a=(0.3, 4.0), b=(-4.0, 4.0), theta=(-6.0, 6.0)),
    "extreme": dict(a=(0.01, 10.0), b=(-10.0, 10.0), theta=(-10.0, 10.0)),
}


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def item(draw, regime, model):
    """(a, thresholds, model) for one item with 2..8 categories; GRM thresholds strictly increasing."""
    r = REGIMES[regime]
    a = draw(_floats(*r["a"]))
    n_thr = draw(st.integers(1, 7))
    b = draw(st.lists(_floats(*r["b"]), min_size=n_thr, max_size=n_thr))
    if model == "grm":
        b = sorted(set(b))  # strictly increasing; duplicates removed (at least one value remains)
    return a, b, model


@st.composite
def bank(draw, regime):
    """A NaN-padded bank of 1..5 items mixing GRM and GPCM, plus a theta vector."""
    models = draw(st.lists(st.sampled_from(["grm", "gpcm"]), min_size=1, max_size=5))
    items = [draw(item(regime, m)) for m in models]
    kmax = max(len(b) for _, b, _ in items) + 1
    a = np.array([it[0] for it in items])
    b = np.full((len(items), kmax - 1), np.nan)
    for i, (_, bi, _) in enumerate(items):
        b[i, : len(bi)] = bi
    lo, hi = REGIMES[regime]["theta"]
    theta = np.array(draw(st.lists(_floats(lo, hi), min_size=1, max_size=12)))
    return a, b, models, theta


def _n_cat(b):
    return np.isfinite(b).sum(axis=1) + 1


regimes = st.sampled_from(sorted(REGIMES))


@SETTINGS
@given(data=st.data(), regime=regimes)
def test_probabilities_are_a_distribution(data, regime):
    a, b, models, theta = data.draw(bank(regime))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings anywhere in range
        P = irt.probabilities(theta, a, b, model=models)
        logP = irt.log_probabilities(theta, a, b, model=models)
    assert P.shape == (theta.size, a.size, b.shape[1] + 1)
    assert np.all(np.isfinite(P))
    assert np.all((P >= 0.0) & (P <= 1.0))
    assert_allclose(P.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    # padded categories are impossible; real ones have a finite log-probability even if P underflows
    valid = np.arange(P.shape[2])[None, :] < _n_cat(b)[:, None]
    assert np.all(P[:, ~valid] == 0.0) and np.all(np.isneginf(logP[:, ~valid]))
    assert np.all(np.isfinite(logP[:, valid])) and np.all(logP[:, valid] <= 0.0)


@SETTINGS
@given(data=st.data(), regime=regimes)
def test_information_non_negative_and_finite(data, regime):
    a, b, models, theta = data.draw(bank(regime))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        I = irt.information(theta, a, b, model=models)
        P, dP, d2P = irt.derivatives(theta, a, b, model=models)
    assert I.shape == (theta.size, a.size)
    assert np.all(np.isfinite(I)) and np.all(I >= 0.0)
    assert np.all(np.isfinite(dP)) and np.all(np.isfinite(d2P))
    # sum_k P_k = 1 => derivatives sum to zero (atol scaled by a, a^2)
    assert_allclose(dP.sum(axis=2), 0.0, atol=1e-12 * max(1.0, a.max()))
    assert_allclose(d2P.sum(axis=2), 0.0, atol=1e-12 * max(1.0, a.max()) ** 2)


@SETTINGS
@given(data=st.data(), regime=regimes)
def test_gpcm_information_bounded_by_max_variance(data, regime):
    # a^2 Var(X) <= a^2 (K-1)^2 / 4 (Popoviciu's inequality for a variable on [0, K-1])
    a, b, _, theta = data.draw(bank(regime))
    I = irt.information(theta, a, b, model="gpcm")
    bound = a ** 2 * (_n_cat(b) - 1) ** 2 / 4
    assert np.all(I <= bound[None, :] * (1 + 1e-12))


@SETTINGS
@given(data=st.data(), regime=regimes, model=st.sampled_from(["grm", "gpcm"]))
def test_cumulative_probabilities_non_decreasing_in_theta(data, regime, model):
    # P(X >= k | theta) is non-decreasing in theta for every k (both models are monotone);
    # computed from summed category probabilities, so allow 1e-12 of rounding
    a, b, _ = data.draw(item(regime, model))
    lo, hi = REGIMES[regime]["theta"]
    theta = np.sort(np.array(data.draw(st.lists(_floats(lo, hi), min_size=2, max_size=30))))
    P = irt.probabilities(theta, [a], [b], model=model)[:, 0, :]
    upper = np.cumsum(P[:, ::-1], axis=1)[:, ::-1]  # upper[:, k] = P(X >= k)
    assert np.all(np.diff(upper, axis=0) >= -1e-12)
    # and so is the expected score
    E = irt.expected_score(theta, [a], [b], model=model)[:, 0]
    assert np.all(np.diff(E) >= -1e-12 * len(b))


@SETTINGS
@given(data=st.data(), model=st.sampled_from(["grm", "gpcm"]), shift=_floats(-3.0, 3.0))
def test_location_invariance(data, model, shift):
    # the models depend on theta - b only: shifting both by c leaves P unchanged (rtol 1e-9: theta - b is
    # rounded differently after the shift)
    a, b, _ = data.draw(item("realistic", model))
    theta = np.array(data.draw(st.lists(_floats(-6.0, 6.0), min_size=1, max_size=8)))
    P0 = irt.probabilities(theta, [a], [b], model=model)
    P1 = irt.probabilities(theta + shift, [a], [np.array(b) + shift], model=model)
    assert_allclose(P1, P0, rtol=1e-9, atol=1e-13)


@SETTINGS
@given(data=st.data(), regime=regimes)
def test_two_category_models_agree(data, regime):
    # with one threshold the GRM and the GPCM are both the 2PL
    r = REGIMES[regime]
    a = np.array(data.draw(st.lists(_floats(*r["a"]), min_size=1, max_size=4)))
    b = np.array(data.draw(st.lists(_floats(*r["b"]), min_size=a.size, max_size=a.size)))
    theta = np.array(data.draw(st.lists(_floats(*r["theta"]), min_size=1, max_size=8)))
    assert_allclose(irt.log_probabilities(theta, a, b, "grm"), irt.log_probabilities(theta, a, b, "gpcm"),
                    rtol=1e-12, atol=1e-14)
    assert_allclose(irt.information(theta, a, b, "grm"), irt.information(theta, a, b, "gpcm"),
                    rtol=1e-10, atol=0)


@SETTINGS
@given(data=st.data(), regime=regimes)
def test_batching_does_not_leak_between_items(data, regime):
    # each item's row of a padded, mixed bank equals the item computed on its own
    a, b, models, theta = data.draw(bank(regime))
    P = irt.probabilities(theta, a, b, model=models)
    I = irt.information(theta, a, b, model=models)
    for i in range(a.size):
        K = _n_cat(b)[i]
        bi = b[i, : K - 1]
        assert_allclose(P[:, i, :K], irt.probabilities(theta, [a[i]], [bi], model=models[i])[:, 0], rtol=1e-13,
                        atol=0)
        assert_allclose(I[:, i], irt.information(theta, [a[i]], [bi], model=models[i])[:, 0], rtol=1e-12,
                        atol=0)

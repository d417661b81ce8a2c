"""Invariants of the clinical layer: certainty is a probability, monotone in the threshold, complementary
across sides; change is antisymmetric; GAS is monotone in every level."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cat_prom.clinical import change, gas_t_score, prob_beyond, prob_worse_than

NODES = np.linspace(-6, 6, 81)
posteriors = st.builds(lambda mu, sd, skew: -0.5 * ((NODES - mu) / sd) ** 2 + skew * NODES,
                       st.floats(-4, 4), st.floats(0.1, 2.0), st.floats(-0.5, 0.5))


@settings(max_examples=100, deadline=None)
@given(lp=posteriors, c1=st.floats(-7, 7), c2=st.floats(-7, 7))
def test_certainty_is_a_monotone_probability(lp, c1, c2):
    lo, hi = min(c1, c2), max(c1, c2)
    p_lo, p_hi = prob_beyond(lp, NODES, lo, log=True), prob_beyond(lp, NODES, hi, log=True)
    assert 0.0 <= p_hi <= p_lo <= 1.0 + 1e-12
    # above and below the same line add to 1 (floating point: 1e-12)
    assert math.isclose(p_lo + prob_beyond(lp, NODES, lo, "below", log=True), 1.0, abs_tol=1e-12)
    # weights and log densities give the same answer (rtol 1e-9: exp/log round trip)
    w = np.exp(lp - lp.max())
    assert math.isclose(prob_beyond(w, NODES, lo), p_lo, rel_tol=1e-9, abs_tol=1e-12)
    # worse side follows the bank's direction
    assert prob_worse_than(lp, NODES, lo, "higher_is_worse", log=True) == p_lo
    assert prob_worse_than(lp, NODES, lo, "higher_is_better", log=True) == prob_beyond(lp, NODES, lo, "below",
                                                                                       log=True)


@settings(max_examples=200, deadline=None)
@given(t1=st.floats(10, 90), t2=st.floats(10, 90), s1=st.floats(0.5, 10), s2=st.floats(0.5, 10),
       mid=st.floats(0.5, 15), direction=st.sampled_from(["higher_is_worse", "higher_is_better"]))
def test_change_is_antisymmetric(t1, t2, s1, s2, mid, direction):
    a = change(t1, s1, t2, s2, direction=direction, mid=mid)
    b = change(t2, s2, t1, s1, direction=direction, mid=mid)
    assert a.delta_t == -b.delta_t and a.se_delta == b.se_delta
    assert a.reliable == b.reliable and a.reaches_mid == b.reaches_mid
    assert {a.direction, b.direction} in ({"worse", "better"}, {"none"})
    assert a.reliable == (abs(t2 - t1) > 1.96 * math.hypot(s1, s2))


@settings(max_examples=200, deadline=None)
@given(levels=st.lists(st.integers(-2, 2), min_size=1, max_size=8), data=st.data(),
       rho=st.floats(0, 0.95))
def test_gas_is_monotone_and_symmetric(levels, data, rho):
    weights = data.draw(st.lists(st.floats(0.1, 10), min_size=len(levels), max_size=len(levels)))
    t = gas_t_score(levels, weights, rho=rho)
    # mirrored levels mirror the score around 50 (rounding: 1e-9)
    assert math.isclose(t - 50, 50 - gas_t_score([-x for x in levels], weights, rho=rho), abs_tol=1e-9)
    i = data.draw(st.integers(0, len(levels) - 1))
    if levels[i] < 2:
        up = list(levels)
        up[i] += 1
        assert gas_t_score(up, weights, rho=rho) > t

"""Property tests for the modal estimators (:mod:`cat_prom.modal` through :mod:`cat_prom.scoring`).

Banks of 1-6 GRM/GPCM items with 2-8 categories are drawn from the *realistic* and *extreme*
regimes of ``test_irt_properties`` (a up to 10, thresholds in ±10) with random short patterns.
Whatever the input: no floating-point warning, θ̂ finite and inside the search interval, the SE
positive, and where no flag is set θ̂ is a root of the estimating equation -- checked with
``irt.derivatives`` (itself tested against 150-digit closed forms) and a central-difference
slope: |f(θ̂)| <= 1e-7 |f'(θ̂)| + 1e-12.
"""
from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cat_prom import irt, scoring

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGIMES = {"realistic": dict(a=(0.3, 4.0), b=(-4.0, 4.0)), "extreme": dict(a=(0.05, 10.0), b=(-10.0, 10.0))}


@st.composite
def case(draw, regime):
    r = REGIMES[regime]
    n = draw(st.integers(1, 6))
    fl = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
    a = np.array([draw(fl(*r["a"])) for _ in range(n)])
    models, rows = [], []
    for _ in range(n):
        m = draw(st.sampled_from(["grm", "gpcm"]))
        b = draw(st.lists(fl(*r["b"]), min_size=1, max_size=7))
        if m == "grm":
            b = sorted(set(b))
        models.append(m)
        rows.append(b)
    B = np.full((n, max(len(b) for b in rows)), np.nan)
    for i, b in enumerate(rows):
        B[i, : len(b)] = b
    p = irt.item_params(a, B, models)
    X = np.full((6, n), np.nan)
    for k in range(6):
        for i in range(n):
            if draw(st.booleans()) or i == 0:
                X[k, i] = draw(st.integers(0, int(p.n_cat[i]) - 1))
    return p, X


def _equation(method, theta, p, x):
    P, dP, d2P = (v[0] for v in irt.derivatives(np.array([theta]), p))
    ans = ~np.isnan(x)
    xi = np.where(ans, x, 0).astype(int)
    idx = np.flatnonzero(ans)
    g = float(sum(dP[i, xi[i]] / P[i, xi[i]] for i in idx))
    if method == "ml":
        return g
    if method == "map":
        return g - theta
    ok = P[idx] > 0
    I = float(np.sum(np.where(ok, dP[idx] ** 2 / np.where(ok, P[idx], 1.0), 0.0)))
    J = float(np.sum(np.where(ok, dP[idx] * d2P[idx] / np.where(ok, P[idx], 1.0), 0.0)))
    return g + J / (2.0 * I)


@SETTINGS
@given(data=st.data(), regime=st.sampled_from(sorted(REGIMES)), method=st.sampled_from(["map", "ml", "wle"]),
       bounds=st.sampled_from([(-6.0, 6.0), (-4.0, 5.0), (-12.0, 12.0)]))
def test_estimates_are_roots_or_flagged_bounds(data, regime, method, bounds):
    p, X = data.draw(case(regime))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = scoring.score(X, p, method, grid=(bounds[0], bounds[1], 81))
    assert np.all(np.isfinite(res.theta)) and np.all((res.theta >= bounds[0]) & (res.theta <= bounds[1]))
    assert np.all(res.se > 0)
    for r in range(X.shape[0]):
        t = res.theta[r]
        if res.flags[r] or (method == "map" and t in bounds):  # MAP returns a bound unflagged
            assert t in bounds
            continue
        f0 = _equation(method, t, p, X[r])
        slope = (_equation(method, t + 1e-6, p, X[r]) - _equation(method, t - 1e-6, p, X[r])) / 2e-6
        assert abs(f0) <= 1e-7 * abs(slope) + 1e-12, (method, t, f0, slope)

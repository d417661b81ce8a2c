"""Reference tests for the modal estimators (:mod:`cat_prom.modal` via :mod:`cat_prom.scoring`).

ML, MAP and WLE must return true roots of their estimating equations. Every
expected value here is computed independently of ``cat_prom.irt``/``cat_prom.modal``:

* ``closed form`` -- category probabilities and their first two θ-derivatives from the
  models' textbook formulas (Samejima 1969: differences of cumulative logistics whose
  derivatives are a P*(1-P*) and a² P*(1-P*)(1-2P*); Muraki 1992: P'_k = a P_k (k - E),
  P''_k = a² P_k ((k - E)² - Var)), written out below in plain numpy;
* ``brute force`` -- every sign change of the estimating equation on a 0.005-step grid
  over the search interval, refined with ``scipy.optimize.brentq`` (xtol 1e-13);
* ``scipy.integrate.quad`` -- differences of Warm's weighted log-likelihood between roots,
  as integrals of the estimating equation.

Short patterns (1-3 answered items) of every category count 2..7, GRM and GPCM, are where
Warm's equation has several roots and where the previous solver returned non-roots.
D = 1; categories are 0-based.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, optimize
from scipy.differentiate import derivative

from cat_prom import irt, modal, scoring
from cat_prom.bank import ItemBank
from cat_prom.scoring import FLAG_ALL_HIGHEST, FLAG_ALL_LOWEST, FLAG_NO_ROOT
from test_scoring_reference import _params as params_of  # (a, thresholds, model) list -> ItemParams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LO, HI = -6.0, 6.0
FINE = np.linspace(LO, HI, 2401)  # brute-force scan, step 0.005


# --------------------------------------------------------------------------
# Independent closed forms (no cat_prom)
# --------------------------------------------------------------------------
def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_pdp(theta, a, thr, model):
    """P, P', P'' of one item's categories at ``theta`` (T,), each (T, K) -- closed form."""
    t = np.asarray(theta, dtype=float)[:, None]
    b = np.asarray(thr, dtype=float)[None, :]
    if model == "grm":
        s, q = _sig(a * (t - b)), _sig(-a * (t - b))  # P*_j and 1 - P*_j, both without cancellation
        w = s * q
        one, zero = np.ones_like(t), np.zeros_like(t)
        S = np.concatenate([one, s, zero], axis=1)
        Qs = np.concatenate([zero, q, one], axis=1)
        dS = np.concatenate([zero, a * w, zero], axis=1)
        d2S = np.concatenate([zero, a * a * w * (q - s), zero], axis=1)
        # P_k = P*_k - P*_{k+1} = Q*_{k+1} - Q*_k: take the difference of the smaller pair
        P = np.where(S[:, :-1] > 0.5, Qs[:, 1:] - Qs[:, :-1], S[:, :-1] - S[:, 1:])
        return P, dS[:, :-1] - dS[:, 1:], d2S[:, :-1] - d2S[:, 1:]
    z = np.concatenate([np.zeros_like(t), np.cumsum(a * (t - b), axis=1)], axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    P = e / e.sum(axis=1, keepdims=True)
    k = np.arange(P.shape[1])[None, :]
    E = (P * k).sum(axis=1, keepdims=True)
    V = (P * (k - E) ** 2).sum(axis=1, keepdims=True)
    return P, a * P * (k - E), a * a * P * ((k - E) ** 2 - V)


def ref_parts(theta, form, pattern):
    """ℓ', I and Warm's J of a pattern [(item, category), ...] at ``theta`` (T,)."""
    g = I = J = 0.0
    for i, k in pattern:
        P, dP, d2P = ref_pdp(theta, *form[i])
        g = g + dP[:, k] / P[:, k]
        I = I + (dP * dP / P).sum(axis=1)
        J = J + (dP * d2P / P).sum(axis=1)
    return g, I, J


def ref_equation(method, form, pattern, prior=(0.0, 1.0)):
    """The estimating equation f(θ) of ``method`` as a vectorised function (closed form)."""
    def f(theta):
        th = np.atleast_1d(np.asarray(theta, dtype=float))
        g, I, J = ref_parts(th, form, pattern)
        if method == "ml":
            return g
        if method == "map":
            return g - (th - prior[0]) / prior[1] ** 2
        return g + J / (2.0 * I)
    return f


def brute_roots(f):
    """Falling roots (f goes from > 0 to <= 0) of f on [LO, HI]: scan + brentq (xtol 1e-13)."""
    v = f(FINE)
    out = []
    for j in np.flatnonzero((v[:-1] > 0) & (v[1:] <= 0)):
        if v[j + 1] == 0.0:
            out.append(float(FINE[j + 1]))
        else:
            out.append(optimize.brentq(lambda t: f(t)[0], FINE[j], FINE[j + 1], xtol=1e-13, rtol=1e-15))
    return out, v


def random_form(K, model, n, seed):
    rng = np.random.default_rng(seed)
    form = []
    for _ in range(n):
        a = float(rng.uniform(0.5, 3.5))
        if model == "grm":
            thr = np.sort(rng.normal(0.0, 1.3, K - 1)) + 0.15 * np.arange(K - 1)
        else:
            thr = rng.normal(0.0, 1.3, K - 1)  # steps in any order
        form.append((a, tuple(float(x) for x in thr), model))
    return form


def short_patterns(form, seed, n_multi=40):
    """Every 1-item pattern and random 2- and 3-item patterns of a form."""
    rng = np.random.default_rng(seed)
    K = [len(t) + 1 for _, t, _ in form]
    pats = [((i, k),) for i in range(len(form)) for k in range(K[i])]
    for _ in range(n_multi):
        items = rng.choice(len(form), int(rng.integers(2, 4)), replace=False)
        pats.append(tuple((int(i), int(rng.integers(K[i]))) for i in items))
    return pats


def as_matrix(pats, n_items):
    X = np.full((len(pats), n_items), np.nan)
    for r, pat in enumerate(pats):
        for i, k in pat:
            X[r, i] = k
    return X


def slope(f, t):
    return (f(t + 1e-5)[0] - f(t - 1e-5)[0]) / 2e-5  # central difference, for the scale of |f|


CASES = [(K, model) for K in range(2, 8) for model in ("grm", "gpcm")]


# --------------------------------------------------------------------------
# WLE: a true root, and the one Warm's weighted likelihood prefers
# --------------------------------------------------------------------------
class TestWLE:
    @pytest.mark.parametrize("K,model", CASES)
    def test_short_patterns_return_true_roots(self, K, model):
        form = random_form(K, model, 5, seed=100 + 10 * K + (model == "gpcm"))
        pats = short_patterns(form, seed=K)
        res = scoring.wle_estimate(as_matrix(pats, len(form)), params_of(form), bounds=(LO, HI))
        for r, pat in enumerate(pats):
            f = ref_equation("wle", form, pat)
            roots, v = brute_roots(f)
            t = res.theta[r]
            if not roots:  # no falling root: the bound chosen by the sign at the lower end, flagged
                assert t == (LO if v[0] <= 0 else HI) and res.flags[r] != "", pat
                continue
            assert res.flags[r] == "", pat
            # brute force (scan + brentq, xtol 1e-13): the estimate is one of the roots, atol 1e-8
            # (the engine stops at an estimated 1e-10)
            assert min(abs(t - x) for x in roots) <= 1e-8, (pat, t, roots)
            # |f(θ̂)| <= 1e-8 |f'(θ̂)|: the equation holds to 1e-8 in θ (closed-form f)
            assert abs(f(t)[0]) <= 1e-8 * abs(slope(f, t)), (pat, t, f(t))
            # SE = 1/sqrt(I(θ̂)), closed-form I: rtol 1e-8
            _, I, _ = ref_parts(np.array([t]), form, pat)
            assert_allclose(res.se[r], 1 / math.sqrt(I[0]), rtol=1e-8)
            if len(roots) > 1:
                self._check_largest_weighted_likelihood(f, t, roots, pat)

    @staticmethod
    def _check_largest_weighted_likelihood(f, t, roots, pat):
        # Φ(x) - Φ(θ̂) = ∫_θ̂^x f (scipy.integrate.quad, epsabs 1e-12): no other root is higher
        # (atol 1e-9; exact ties are decided by the rule tested below).
        for x in roots:
            if abs(x - t) < 1e-6:  # the root returned
                continue
            d = integrate.quad(lambda u: f(u)[0], t, x, epsabs=1e-12, limit=200)[0]
            assert d <= 1e-9, (pat, t, x, d)

    def test_several_roots_were_exercised(self):
        # the short patterns of the cases above include equations with several falling roots, so
        # the choice among them is tested there (brute force: at least 10 such patterns)
        n = 0
        for K, model in CASES:
            form = random_form(K, model, 5, seed=100 + 10 * K + (model == "gpcm"))
            n += sum(len(brute_roots(ref_equation("wle", form, pat))[0]) > 1 for pat in short_patterns(form, seed=K))
        assert n >= 10

    @pytest.mark.parametrize("form,pattern,want_index", [
        # a 3-category GRM item in its middle category and a flat 2PL item: two local maxima of the
        # weighted likelihood, the upper one higher by 0.81 (quad)
        ([(3.0, (-1.5, 1.5), "grm"), (0.6, (0.8,), "grm")], ((0, 1), (1, 1)), 1),
        # a GPCM item in its middle category and a flat 2PL item at 0: the lower one higher by 0.62
        ([(3.0, (-1.0, 2.0), "gpcm"), (0.5, (0.0,), "grm")], ((0, 1), (1, 0)), 0),
    ])
    def test_two_maxima_returns_the_higher(self, form, pattern, want_index):
        f = ref_equation("wle", form, pattern)
        roots, _ = brute_roots(f)
        assert len(roots) == 2  # brute force: two falling roots (a rising one between)
        phis = [integrate.quad(lambda u: f(u)[0], roots[0], x, epsabs=1e-12)[0] for x in roots]
        assert int(np.argmax(phis)) == want_index and abs(phis[1] - phis[0]) > 0.5
        x = as_matrix([pattern], len(form))
        r = scoring.wle_estimate(x, params_of(form))
        # brentq root with the larger Φ = ∫ f (quad), atol 1e-8
        assert_allclose(r.theta[0], roots[want_index], rtol=0, atol=1e-8)
        # the choice does not depend on the search interval (catR's uniroot's does)
        r2 = scoring.wle_estimate(x, params_of(form), bounds=(-4.0, 5.0))
        assert_allclose(r2.theta[0], roots[want_index], rtol=0, atol=1e-8)

    @pytest.mark.parametrize("form,centre_bounds", [
        ([(3.0, (-1.5, 1.5), "grm")], (-6.0, 6.0)),   # symmetric about 0: an exact tie, roots ±1.133
        ([(2.5, (-1.2, 1.4), "gpcm")], (-6.0, 6.0)),  # symmetric about 0.1: roots -0.745, 0.945
        ([(2.5, (-1.2, 1.4), "gpcm")], (0.0, 6.0)),   # same item, interval centred at 3
    ])
    def test_tied_maxima_return_the_one_nearer_the_centre(self, form, centre_bounds):
        # One item in its middle category: the weighted likelihood is symmetric about the midpoint of
        # the two thresholds, so its two maxima tie exactly (quad: |ΔΦ| < 1e-9). The tie rule
        # returns the root nearer the centre of the search interval, the lower one if equally near.
        f = ref_equation("wle", form, ((0, 1),))
        lo, hi = centre_bounds
        roots = [x for x in brute_roots(f)[0]]
        assert len(roots) == 2
        assert abs(integrate.quad(lambda u: f(u)[0], roots[0], roots[1], epsabs=1e-12)[0]) < 1e-9
        centre = 0.5 * (lo + hi)
        want = min(roots, key=lambda x: (round(abs(x - centre), 9), x))
        r = scoring.wle_estimate(np.array([[1.0]]), params_of(form), bounds=(lo, hi))
        assert_allclose(r.theta[0], want, rtol=0, atol=1e-8)  # brentq, atol 1e-8

    @pytest.mark.parametrize("bank,item,cat,old", [
        ("physical-function", "PF19", 4, 0.9199056468946935),
        ("sleep-disturbance", "SLP14", 0, -0.5013896920757795),
        ("drowsiness", "DRW08", 0, 0.2954784237174023),
    ])
    def test_demo_bank_single_items_regression(self, bank, item, cat, old):
        # regression: the previous solver (Fisher-scoring slope, decreasing-function assumption)
        # returned these non-roots (`old`, 1.6e-4 to 3.7e-4 from the root) for one item answered
        b = ItemBank.load(os.path.join(ROOT, "item_banks", bank + ".json"))
        j = b.index(item)
        form = [(float(b.a[j]), tuple(float(x) for x in b.b[j][np.isfinite(b.b[j])]), "grm")]
        roots, _ = brute_roots(ref_equation("wle", form, ((0, cat),)))
        assert len(roots) == 1 and abs(roots[0] - old) > 1e-4
        x = np.full((1, b.n_items), np.nan)
        x[0, j] = cat
        r = scoring.wle_estimate(x, b)
        # brute force (scan + brentq, xtol 1e-13): atol 1e-8
        assert_allclose(r.theta[0], roots[0], rtol=0, atol=1e-8)


# --------------------------------------------------------------------------
# ML and MAP: stationary points
# --------------------------------------------------------------------------
class TestMLMAP:
    @pytest.mark.parametrize("K,model", CASES)
    @pytest.mark.parametrize("method,prior", [("ml", (0.0, 1.0)), ("map", (0.0, 1.0)), ("map", (0.5, 1.3))])
    def test_short_patterns_are_stationary_points(self, K, model, method, prior):
        form = random_form(K, model, 5, seed=200 + 10 * K + (model == "gpcm"))
        pats = short_patterns(form, seed=K + 50, n_multi=30)
        X = as_matrix(pats, len(form))
        p = params_of(form)
        res = (scoring.ml_estimate(X, p, bounds=(LO, HI)) if method == "ml"
               else scoring.map_estimate(X, p, bounds=(LO, HI), prior=prior))
        for r, pat in enumerate(pats):
            f = ref_equation(method, form, pat, prior)
            roots, v = brute_roots(f)
            t = res.theta[r]
            assert len(roots) <= 1, pat  # strictly decreasing equation (concave log-likelihood)
            if not roots:
                assert t == (LO if v[0] <= 0 else HI), pat
                if method == "ml":
                    low = all(k == 0 for _, k in pat)
                    high = all(k == len(form[i][1]) for i, k in pat)
                    assert res.flags[r] == (FLAG_ALL_LOWEST if low else FLAG_ALL_HIGHEST if high else FLAG_NO_ROOT)
                continue
            assert res.flags[r] == "", pat
            # brute force: atol 1e-8; gradient |f(θ̂)| <= 1e-8 |f'(θ̂)| (closed form)
            assert abs(t - roots[0]) <= 1e-8, (pat, t, roots)
            assert abs(f(t)[0]) <= 1e-8 * abs(slope(f, t)), (pat, t, f(t))
            _, I, _ = ref_parts(np.array([t]), form, pat)
            want = 1 / math.sqrt(I[0] + (1 / prior[1] ** 2 if method == "map" else 0.0))
            assert_allclose(res.se[r], want, rtol=1e-8)  # SE from closed-form I, rtol 1e-8


# --------------------------------------------------------------------------
# Batches, blocks and the equation's pieces
# --------------------------------------------------------------------------
def test_batched_equals_one_by_one():
    # each pattern's estimate depends on its own row only: a block of 700 (two solver blocks)
    # equals the patterns scored one at a time (same arithmetic, rtol 1e-13)
    form = random_form(5, "grm", 12, seed=7) + random_form(4, "gpcm", 6, seed=8)
    p = params_of(form)
    rng = np.random.default_rng(3)
    X = rng.integers(0, 4, (700, len(form))).astype(float)
    X[rng.random(X.shape) < 0.5] = np.nan
    X[0] = np.nan
    for method in ("map", "ml", "wle"):
        r = scoring.score(X, p, method)
        for i in range(0, 700, 37):
            one = scoring.score(X[i:i + 1], p, method)
            assert_allclose(r.theta[i], one.theta[0], rtol=1e-13, atol=1e-15)
            assert_allclose(r.se[i], one.se[0], rtol=1e-13)
            assert r.flags[i] == one.flags[0]


@pytest.mark.parametrize("model", ["grm", "gpcm"])
def test_item_sums_are_derivatives_of_I_and_J(model):
    # I', I'', J', J'' of modal.item_sums against scipy.differentiate.derivative of the closed-form
    # I(θ) and J(θ) (order 8 finite differences, rtol 1e-7, atol 1e-9)
    form = [(1.7, (-0.8, 0.1, 1.2), model), (2.6, (-1.0, 0.5), model)]
    p = params_of(form)
    theta = np.linspace(-3.0, 3.0, 13)
    names = ("I", "dI", "ddI", "J", "dJ", "ddJ")
    got = dict(zip(names, modal.item_sums(irt._terms(theta, p, 4), names)))  # each (T, N)
    for i, item in enumerate(form):
        def I(t, item=item):
            P, dP, _ = ref_pdp(t.ravel(), *item)
            return (dP * dP / P).sum(axis=1).reshape(t.shape)

        def J(t, item=item):
            P, dP, d2P = ref_pdp(t.ravel(), *item)
            return (dP * d2P / P).sum(axis=1).reshape(t.shape)

        tol = dict(atol=1e-12, rtol=1e-10)
        assert_allclose(got["I"][:, i], I(theta), rtol=1e-12)  # closed form, rtol 1e-12
        assert_allclose(got["J"][:, i], J(theta), rtol=1e-10, atol=1e-12)
        dI = derivative(I, theta, tolerances=tol).df
        dJ = derivative(J, theta, tolerances=tol).df
        assert_allclose(got["dI"][:, i], dI, rtol=1e-7, atol=1e-9)
        assert_allclose(got["dJ"][:, i], dJ, rtol=1e-7, atol=1e-9)
        ddI = derivative(lambda t: derivative(I, t, tolerances=tol).df, theta, tolerances=tol).df
        ddJ = derivative(lambda t: derivative(J, t, tolerances=tol).df, theta, tolerances=tol).df
        assert_allclose(got["ddI"][:, i], ddI, rtol=1e-6, atol=1e-7)
        assert_allclose(got["ddJ"][:, i], ddJ, rtol=1e-6, atol=1e-7)


def test_wide_interval_and_many_items():
    # a wider search interval than 12 gets more bracketing nodes (spacing <= 0.15) and the same
    # roots; 40 answered items: ML against brentq on the closed form, atol 1e-8
    form = random_form(5, "grm", 40, seed=11)
    p = params_of(form)
    rng = np.random.default_rng(5)
    X = rng.integers(0, 5, (20, 40)).astype(float)
    r = scoring.ml_estimate(X, p, bounds=(-15.0, 15.0))
    for i in range(20):
        f = ref_equation("ml", form, [(j, int(X[i, j])) for j in range(40)])
        want = optimize.brentq(lambda t: f(t)[0], -15, 15, xtol=1e-13)
        assert_allclose(r.theta[i], want, rtol=0, atol=1e-8)

"""Reference tests for :mod:`cat_prom.irt` (GRM and GPCM, D = 1).

Every expected value is computed *in this file*, independently of
``cat_prom.irt``, and carries its provenance and tolerance beside it:

* ``closed form (decimal, 150 digits)`` -- the model's defining formula
  evaluated with :mod:`decimal` at 150 significant digits, so the reference is
  exact to double precision even where the probabilities are 1e-80 or the
  log-probabilities are -1000. Samejima (1969) for the GRM (a difference of
  cumulative logistics), Muraki (1992) for the GPCM (a normalised exponential of
  cumulative steps), Lord (1980) a^2 P Q for 2PL information, Muraki (1993)
  a^2 Var(X | theta) for GPCM information, Samejima (1969)
  a^2 sum_k (W_k - W_{k+1})^2 / P_k for GRM information.
* ``hand derivation`` -- parameters chosen so that the answer is a small
  rational number (derivation in the comment).
* ``scipy.differentiate.derivative`` / ``5-point stencil`` -- numeric
  derivatives of the independent reference probabilities.
* ``parameter set`` -- where a documented example item exists (lordif, Embretson &
  Reise via classify) its *parameters* are used; none of those sources prints
  output values that could be retrieved, so the expected values are closed form.

The tolerances are the contract: rtol 1e-12 on probabilities where they are
computed in log space, looser only where a numeric derivative is involved.
"""
from __future__ import annotations

import math
import warnings
from decimal import Decimal, localcontext

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.differentiate import derivative

from cat_prom import irt
from cat_prom.errors import InvalidBankError, InvalidDataError

# --------------------------------------------------------------------------
# Independent references. None of these call cat_prom.irt.
# --------------------------------------------------------------------------
_PREC = 150  # digits: e^-200 ~ 1e-87 still has > 60 significant digits left after 1 - P*


def _d(x) -> Decimal:
    return Decimal(float(x))  # exact binary -> decimal conversion


def _dec_logistic(x: Decimal) -> Decimal:
    return 1 / (1 + (-x).exp())


def grm_decimal(theta, a, b, prec=_PREC):
    """GRM category probabilities as Decimals (Samejima 1969): P_k = P*_k - P*_{k+1}."""
    with localcontext() as ctx:
        ctx.prec = prec
        t, a = _d(theta), _d(a)
        star = [Decimal(1)] + [_dec_logistic(a * (t - _d(bk))) for bk in b] + [Decimal(0)]
        return [star[k] - star[k + 1] for k in range(len(b) + 1)]


def gpcm_decimal(theta, a, b):
    """GPCM category probabilities as Decimals (Muraki 1992): P_k ∝ exp sum_{v<=k} a (theta - b_v)."""
    with localcontext() as ctx:
        ctx.prec = _PREC
        t, a = _d(theta), _d(a)
        z = [Decimal(0)]
        for bv in b:
            z.append(z[-1] + a * (t - _d(bv)))
        num = [zk.exp() for zk in z]
        tot = sum(num)
        return [n / tot for n in num]


def ref_decimal(theta, a, b, model, prec=_PREC):
    return grm_decimal(theta, a, b, prec) if model == "grm" else gpcm_decimal(theta, a, b)


def ref_probs(theta, a, b, model):
    """Closed-form probabilities as floats, shape (len(theta), K)."""
    return np.array([[float(p) for p in ref_decimal(t, a, b, model)] for t in np.atleast_1d(theta)])


def ref_logprobs(theta, a, b, model, prec=_PREC):
    out = []
    for t in np.atleast_1d(theta):
        with localcontext() as ctx:
            ctx.prec = prec
            out.append([float(p.ln()) for p in ref_decimal(t, a, b, model, prec)])
    return np.array(out)


def ref_information(theta, a, b, model):
    """Closed-form item information (decimal): GRM a^2 sum (W_k - W_{k+1})^2 / P_k; GPCM a^2 Var."""
    out = []
    for t in np.atleast_1d(theta):
        with localcontext() as ctx:
            ctx.prec = _PREC
            ad = _d(a)
            P = ref_decimal(t, a, b, model)
            if model == "grm":
                star = [Decimal(1)] + [_dec_logistic(ad * (_d(t) - _d(bk))) for bk in b] + [Decimal(0)]
                W = [s * (1 - s) for s in star]
                info = ad * ad * sum((W[k] - W[k + 1]) ** 2 / P[k] for k in range(len(P)))
            else:
                E = sum(k * p for k, p in enumerate(P))
                V = sum((k - E) ** 2 * p for k, p in enumerate(P))
                info = ad * ad * V
            out.append(float(info))
    return np.array(out)


def grm_np(theta, a, b):
    """Plain-numpy GRM, elementwise in theta (any shape) -> (..., K). For numeric derivatives."""
    t = np.asarray(theta, dtype=float)[..., None]
    star = 1.0 / (1.0 + np.exp(-a * (t - np.asarray(b, dtype=float))))
    one = np.ones(t.shape)
    star = np.concatenate([one, star, 0 * one], axis=-1)
    return star[..., :-1] - star[..., 1:]


def gpcm_np(theta, a, b):
    """Plain-numpy GPCM, elementwise in theta (any shape) -> (..., K)."""
    t = np.asarray(theta, dtype=float)[..., None]
    z = np.concatenate([np.zeros(t.shape), np.cumsum(a * (t - np.asarray(b, dtype=float)), axis=-1)], axis=-1)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_np(model):
    return grm_np if model == "grm" else gpcm_np


def numeric_dP(theta, a, b, model):
    """dP_k/dtheta of the reference probabilities, scipy.differentiate.derivative (order 8)."""
    f = ref_np(model)
    K = len(b) + 1
    cols = []
    for k in range(K):
        res = derivative(lambda x, k=k: f(x, a, b)[..., k], np.asarray(theta, dtype=float),
                         tolerances=dict(atol=1e-13, rtol=1e-10))
        assert np.all(res.error < 1e-9)  # scipy's own error estimate
        cols.append(res.df)
    return np.stack(cols, axis=-1)


def stencil5_second(f, theta, h=1e-2):
    """Second derivative by the 5-point central stencil; truncation O(h^4), round-off O(eps / h^2)."""
    t = np.asarray(theta, dtype=float)
    return (-f(t + 2 * h) + 16 * f(t + h) - 30 * f(t) + 16 * f(t - h) - f(t - 2 * h)) / (12 * h * h)


# A small item set used throughout: (a, thresholds, model)
ITEMS = [
    pytest.param(1.7, (0.4,), "grm", id="2pl-as-grm"),
    pytest.param(1.7, (0.4,), "gpcm", id="2pl-as-gpcm"),
    pytest.param(1.5, (-1.2, 0.5, 1.5), "grm", id="grm-4cat-lordif"),
    pytest.param(2.8, (-2.0, -0.7, 0.3, 1.1, 2.4), "grm", id="grm-6cat"),
    pytest.param(0.683, (-3.513, -0.041, 0.182), "gpcm", id="gpcm-ER-item5"),
    pytest.param(1.9, (1.0, -0.5, 0.8), "gpcm", id="gpcm-reversed-steps"),
    pytest.param(0.35, (-1.0, 2.0), "grm", id="grm-flat"),
]


# --------------------------------------------------------------------------
# Probabilities
# --------------------------------------------------------------------------
class TestProbabilities:
    @pytest.mark.parametrize("model", ["grm", "gpcm"])
    def test_two_categories_is_2pl_logistic(self, model):
        # closed form 2PL: P(X=1) = 1 / (1 + exp(-a (theta - b))) with math.exp, rtol 1e-13
        theta = np.linspace(-6, 6, 41)
        a = np.array([0.4, 1.0, 2.3, 4.0])
        b = np.array([-2.0, 0.0, 0.7, 3.1])
        P = irt.probabilities(theta, a, b, model=model)
        assert P.shape == (41, 4, 2)
        expected = np.array([[1.0 / (1.0 + math.exp(-ai * (t - bi))) for ai, bi in zip(a, b)] for t in theta])
        assert_allclose(P[..., 1], expected, rtol=1e-13, atol=0)
        assert_allclose(P[..., 0], 1.0 - expected, rtol=1e-12, atol=1e-16)

    def test_grm_lordif_example_item(self):
        # parameter set: the documented example of lordif::probgrm (Choi), probgrm(seq(-4,4,.1), 1.5,
        # c(-1.2,0.5,1.5)); the documentation prints no output, so the reference is the
        # closed form (decimal, 150 digits) difference of cumulative logistics, rtol 1e-12
        theta = np.round(np.arange(-4.0, 4.0 + 1e-9, 0.1), 10)
        P = irt.probabilities(theta, [1.5], [[-1.2, 0.5, 1.5]])[:, 0, :]
        assert_allclose(P, ref_probs(theta, 1.5, (-1.2, 0.5, 1.5), "grm"), rtol=1e-12, atol=0)

    def test_gpcm_embretson_reise_item5(self):
        # parameter set: Embretson & Reise (2000, p. 112) item 5, alpha = .683, delta = (-3.513, -.041, .182),
        # as quoted in the documentation of classify::gpcm; reference: closed form (decimal, 150 digits)
        # Muraki (1992) definition, rtol 1e-12
        a, b = 0.683, (-3.513, -0.041, 0.182)
        theta = np.linspace(-4, 4, 33)
        P = irt.probabilities(theta, [a], [list(b)], model="gpcm")[:, 0, :]
        assert_allclose(P, ref_probs(theta, a, b, "gpcm"), rtol=1e-12, atol=0)

    def test_hand_derived_grm(self):
        # hand derivation: a = ln 3, b = (-1, 1), theta = 0 -> P*_1 = sigma(ln 3) = 3/4,
        # P*_2 = sigma(-ln 3) = 1/4, so P = (1/4, 1/2, 1/4); rtol 1e-15
        P = irt.probabilities(0.0, [math.log(3.0)], [[-1.0, 1.0]])[0, 0]
        assert_allclose(P, [0.25, 0.5, 0.25], rtol=1e-15)

    def test_hand_derived_gpcm(self):
        # hand derivation: a = ln 2, b = (0, 0), theta = 1 -> cumulative steps (0, ln 2, 2 ln 2),
        # weights (1, 2, 4), P = (1/7, 2/7, 4/7); rtol 1e-15
        P = irt.probabilities(1.0, [math.log(2.0)], [[0.0, 0.0]], model="gpcm")[0, 0]
        assert_allclose(P, [1 / 7, 2 / 7, 4 / 7], rtol=1e-15)
        # hand derivation: all steps zero at theta = b -> uniform over K categories; rtol 1e-15
        P = irt.probabilities(0.3, [2.0], [[0.3, 0.3, 0.3, 0.3]], model="gpcm")[0, 0]
        assert_allclose(P, np.full(5, 0.2), rtol=1e-15)

    @pytest.mark.parametrize("k", [0, 1, 2])
    def test_grm_cumulative_is_one_half_at_threshold(self, k):
        # hand derivation: P(X >= k+1 | theta = b_{k+1}) = sigma(0) = 1/2 for the GRM; rtol 1e-15
        b = [-1.0, 0.25, 2.0]
        P = irt.probabilities(b[k], [2.2], [b])[0, 0]
        assert_allclose(P[k + 1:].sum(), 0.5, rtol=1e-15)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_against_closed_form(self, a, b, model):
        # closed form (decimal, 150 digits), rtol 1e-12
        theta = np.linspace(-5, 5, 37)
        P = irt.probabilities(theta, [a], [list(b)], model=model)[:, 0, :]
        assert_allclose(P, ref_probs(theta, a, b, model), rtol=1e-12, atol=0)
        # log-probabilities: closed form (decimal ln), rtol 1e-12, atol 1e-15 for log P ~ 0
        logP = irt.log_probabilities(theta, [a], [list(b)], model=model)[:, 0, :]
        assert_allclose(logP, ref_logprobs(theta, a, b, model), rtol=1e-12, atol=1e-15)

    def test_scalar_theta_and_itemparams_passthrough(self):
        # closed form (decimal, 150 digits), rtol 1e-12; an ItemParams passed as `a` is used as is
        p = irt.item_params([1.5], [[-1.2, 0.5, 1.5]])
        P1 = irt.probabilities(0.7, p)
        P2 = irt.probabilities(np.array([0.7]), [1.5], [[-1.2, 0.5, 1.5]])
        assert P1.shape == (1, 1, 4)
        assert_array_equal(P1, P2)
        assert_allclose(P1[0, 0], ref_probs(0.7, 1.5, (-1.2, 0.5, 1.5), "grm")[0], rtol=1e-12)


# --------------------------------------------------------------------------
# Information
# --------------------------------------------------------------------------
class TestInformation:
    def test_2pl_a2PQ(self):
        # closed form 2PL information a^2 P Q (Lord 1980) with math.exp, rtol 1e-12
        theta = np.linspace(-6, 6, 49)
        for model in ("grm", "gpcm"):
            for a, b in [(0.5, -1.0), (1.0, 0.0), (2.5, 0.8), (6.0, 2.0)]:
                P = np.array([1.0 / (1.0 + math.exp(-a * (t - b))) for t in theta])
                Q = np.array([1.0 / (1.0 + math.exp(a * (t - b))) for t in theta])  # not 1 - P: no cancellation
                I = irt.information(theta, [a], [b], model=model)[:, 0]
                assert_allclose(I, a * a * P * Q, rtol=1e-12, atol=0)

    def test_2pl_maximum_is_a2_over_4(self):
        # closed form: 2PL information peaks at theta = b with value a^2 / 4; rtol 1e-15
        assert_allclose(irt.information(0.8, [2.5], [0.8])[0, 0], 2.5 ** 2 / 4, rtol=1e-15)

    def test_hand_derived_values(self):
        # hand derivation (GRM): a = ln 3, b = (-1, 1), theta = 0: W_1 = W_2 = 3/16,
        # dP = a (-3/16, 0, 3/16), P = (1/4, 1/2, 1/4) -> I = a^2 (9/256 * 4 * 2) = 9/32 a^2; rtol 1e-14
        a = math.log(3.0)
        assert_allclose(irt.information(0.0, [a], [[-1.0, 1.0]])[0, 0], 9 / 32 * a * a, rtol=1e-14)
        # hand derivation (GPCM): a = ln 2, b = (0, 0), theta = 1: P = (1, 2, 4)/7, E = 10/7,
        # Var = 18/7 - 100/49 = 26/49 -> I = 26/49 a^2; rtol 1e-14
        a = math.log(2.0)
        assert_allclose(irt.information(1.0, [a], [[0.0, 0.0]], model="gpcm")[0, 0], 26 / 49 * a * a,
                        rtol=1e-14)
        # hand derivation (GPCM): uniform over 3 categories, Var = 2/3 -> I = 2/3 a^2; rtol 1e-14
        assert_allclose(irt.information(0.0, [1.0], [[0.0, 0.0]], model="gpcm")[0, 0], 2 / 3, rtol=1e-14)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_against_closed_form(self, a, b, model):
        # closed form (decimal, 150 digits): Samejima GRM / Muraki a^2 Var; rtol 1e-12
        theta = np.linspace(-6, 6, 49)
        I = irt.information(theta, [a], [list(b)], model=model)[:, 0]
        assert_allclose(I, ref_information(theta, a, b, model), rtol=1e-12, atol=0)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_against_numeric_score_variance(self, a, b, model):
        # definition I = sum_k (dP_k)^2 / P_k with dP from scipy.differentiate.derivative
        # (order 8, adaptive) of the plain-numpy reference probabilities; rtol 1e-8
        theta = np.linspace(-4, 4, 17)
        P = ref_np(model)(theta, a, b)
        dP = numeric_dP(theta, a, b, model)
        I_num = (dP ** 2 / P).sum(axis=-1)
        I = irt.information(theta, [a], [list(b)], model=model)[:, 0]
        assert_allclose(I, I_num, rtol=1e-8, atol=0)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_against_expected_loglik_curvature(self, a, b, model):
        # definition I = -E[d^2 log P_X / dtheta^2] = -sum_k P_k (log P_k)'' with the second derivative
        # by a 5-point stencil (h = 1e-2) of the plain-numpy reference log-probabilities; rtol 1e-6
        theta = np.linspace(-4, 4, 17)
        f = ref_np(model)
        d2logP = stencil5_second(lambda t: np.log(f(t, a, b)), theta)
        I_num = -(f(theta, a, b) * d2logP).sum(axis=-1)
        I = irt.information(theta, [a], [list(b)], model=model)[:, 0]
        assert_allclose(I, I_num, rtol=1e-6, atol=0)

    def test_test_information_is_sum_over_items(self):
        # definition: information of independent items adds; rtol 1e-13 against per-item calls
        theta = np.linspace(-3, 3, 13)
        a = [1.2, 2.0, 0.7]
        b = [[-1.0, 0.0, 1.0], [0.5, np.nan, np.nan], [-0.4, 0.9, np.nan]]
        I = irt.information(theta, a, b)
        for i in range(3):
            bi = [x for x in b[i] if not np.isnan(x)]
            assert_allclose(I[:, i], irt.information(theta, [a[i]], [bi])[:, 0], rtol=1e-13)


# --------------------------------------------------------------------------
# Derivatives
# --------------------------------------------------------------------------
class TestDerivatives:
    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_first_derivative(self, a, b, model):
        # scipy.differentiate.derivative (order 8) of the plain-numpy reference probabilities;
        # rtol 1e-8, atol 1e-11
        theta = np.linspace(-4, 4, 17)
        P, dP, _ = irt.derivatives(theta, [a], [list(b)], model=model)
        assert_allclose(P[:, 0], ref_probs(theta, a, b, model), rtol=1e-12)  # closed form (decimal), rtol 1e-12
        assert_allclose(dP[:, 0], numeric_dP(theta, a, b, model), rtol=1e-8, atol=1e-11)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_second_derivative(self, a, b, model):
        # 5-point stencil (h = 1e-2, truncation ~ h^4 a^6 / 90 <= 1e-8 for a <= 3) of the plain-numpy
        # reference probabilities; atol 2e-7
        theta = np.linspace(-4, 4, 17)
        _, _, d2P = irt.derivatives(theta, [a], [list(b)], model=model)
        d2_num = stencil5_second(lambda t: ref_np(model)(t, a, b), theta)
        assert_allclose(d2P[:, 0], d2_num, rtol=0, atol=2e-7)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_second_is_derivative_of_first(self, a, b, model):
        # scipy.differentiate.derivative of the engine's own dP must give the engine's d2P; rtol 1e-8, atol 1e-10
        theta = np.linspace(-4, 4, 9)
        _, _, d2P = irt.derivatives(theta, [a], [list(b)], model=model)
        for k in range(len(b) + 1):
            res = derivative(lambda x, k=k: irt.derivatives(x.ravel(), [a], [list(b)], model=model)[1][:, 0, k]
                             .reshape(x.shape), theta, tolerances=dict(atol=1e-13, rtol=1e-10))
            assert_allclose(d2P[:, 0, k], res.df, rtol=1e-8, atol=1e-10)

    def test_hand_derived_grm(self):
        # hand derivation: a = ln 3, b = (-1, 1), theta = 0: W = (3/16, 3/16),
        # dW_k/dtheta = a W_k (1 - 2 P*_k) = a (-3/32, 3/32)
        # -> dP = a (-3/16, 0, 3/16), d2P = a^2 (3/32, -3/16, 3/32); rtol 1e-14, atol 1e-16
        a = math.log(3.0)
        P, dP, d2P = irt.derivatives(0.0, [a], [[-1.0, 1.0]])
        assert_allclose(dP[0, 0], a * np.array([-3 / 16, 0.0, 3 / 16]), rtol=1e-14, atol=1e-16)
        assert_allclose(d2P[0, 0], a * a * np.array([3 / 32, -3 / 16, 3 / 32]), rtol=1e-14, atol=1e-16)

    def test_hand_derived_gpcm(self):
        # hand derivation: a = ln 2, b = (0, 0), theta = 1: dP_k = a P_k (k - E) with P = (1, 2, 4)/7,
        # E = 10/7 -> dP = a (-10, -6, 16)/49; rtol 1e-14
        a = math.log(2.0)
        _, dP, _ = irt.derivatives(1.0, [a], [[0.0, 0.0]], model="gpcm")
        assert_allclose(dP[0, 0], a * np.array([-10, -6, 16]) / 49, rtol=1e-14)

    @pytest.mark.parametrize("a,b,model", ITEMS)
    def test_derivatives_sum_to_zero(self, a, b, model):
        # identity: sum_k P_k = 1 for all theta => sum_k dP_k = sum_k d2P_k = 0; atol 1e-13 * a^2
        theta = np.linspace(-8, 8, 33)
        _, dP, d2P = irt.derivatives(theta, [a], [list(b)], model=model)
        assert_allclose(dP.sum(axis=2), 0.0, atol=1e-13 * a)
        assert_allclose(d2P.sum(axis=2), 0.0, atol=1e-13 * a * a)


# --------------------------------------------------------------------------
# Expected score
# --------------------------------------------------------------------------
class TestExpectedScore:
    def test_grm_expected_score_is_sum_of_cumulatives(self):
        # closed form: E[X] = sum_{k=1}^{K-1} P*_k for the GRM (math.exp); rtol 1e-12
        theta = np.linspace(-4, 4, 17)
        a, b = 1.5, (-1.2, 0.5, 1.5)
        E = irt.expected_score(theta, [a], [list(b)])[:, 0]
        expected = [sum(1 / (1 + math.exp(-a * (t - bk))) for bk in b) for t in theta]
        assert_allclose(E, expected, rtol=1e-12)

    def test_gpcm_slope_of_expected_score_is_a_var(self):
        # identity for the GPCM: dE/dtheta = a Var(X) = I / a; scipy.differentiate.derivative; rtol 1e-8
        theta = np.linspace(-4, 4, 17)
        a, b = 0.683, [-3.513, -0.041, 0.182]
        res = derivative(lambda x: irt.expected_score(x.ravel(), [a], [b], model="gpcm")[:, 0].reshape(x.shape),
                         theta, tolerances=dict(atol=1e-13, rtol=1e-10))
        I = irt.information(theta, [a], [b], model="gpcm")[:, 0]
        assert_allclose(res.df, I / a, rtol=1e-8)


# --------------------------------------------------------------------------
# Mixed banks: NaN padding, different category counts, both models
# --------------------------------------------------------------------------
MIXED = [  # (a, thresholds, model)
    (1.3, (0.2,), "grm"),
    (2.1, (-1.5, -0.3, 0.6, 1.8), "grm"),
    (0.9, (0.5, -0.5), "gpcm"),
    (1.6, (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0), "gpcm"),
    (3.2, (-0.4, 0.9), "grm"),
    (1.1, (1.2,), "gpcm"),
]


def _mixed_arrays():
    kmax = max(len(b) for _, b, _ in MIXED) + 1
    a = np.array([it[0] for it in MIXED])
    b = np.full((len(MIXED), kmax - 1), np.nan)
    for i, (_, bi, _) in enumerate(MIXED):
        b[i, : len(bi)] = bi
    return a, b, [m for _, _, m in MIXED], kmax


class TestMixedBank:
    theta = np.linspace(-5, 5, 21)

    def test_probabilities_match_closed_form_per_item(self):
        # closed form (decimal, 150 digits) for each item's real categories, rtol 1e-12;
        # padded categories exactly 0 (log -inf)
        a, b, models, kmax = _mixed_arrays()
        P = irt.probabilities(self.theta, a, b, model=models)
        logP = irt.log_probabilities(self.theta, a, b, model=models)
        assert P.shape == (21, len(MIXED), kmax)
        for i, (ai, bi, mi) in enumerate(MIXED):
            K = len(bi) + 1
            assert_allclose(P[:, i, :K], ref_probs(self.theta, ai, bi, mi), rtol=1e-12, atol=0)
            assert np.all(P[:, i, K:] == 0.0)
            assert np.all(np.isneginf(logP[:, i, K:]))
            assert np.all(np.isfinite(logP[:, i, :K]))

    def test_batched_equals_single_item(self):
        # batching/padding must not leak between items: bitwise-close to one-item calls, rtol 1e-14
        a, b, models, _ = _mixed_arrays()
        P, dP, d2P = irt.derivatives(self.theta, a, b, model=models)
        I = irt.information(self.theta, a, b, model=models)
        E = irt.expected_score(self.theta, a, b, model=models)
        for i, (ai, bi, mi) in enumerate(MIXED):
            K = len(bi) + 1
            p1, d1, dd1 = irt.derivatives(self.theta, [ai], [list(bi)], model=mi)
            assert_allclose(P[:, i, :K], p1[:, 0], rtol=1e-14)
            assert_allclose(dP[:, i, :K], d1[:, 0], rtol=1e-12, atol=1e-15)
            assert_allclose(d2P[:, i, :K], dd1[:, 0], rtol=1e-12, atol=1e-15)
            assert np.all(dP[:, i, K:] == 0.0) and np.all(d2P[:, i, K:] == 0.0)
            assert_allclose(I[:, i], irt.information(self.theta, [ai], [list(bi)], model=mi)[:, 0], rtol=1e-13)
            assert_allclose(E[:, i], irt.expected_score(self.theta, [ai], [list(bi)], model=mi)[:, 0], rtol=1e-13)

    def test_information_matches_closed_form(self):
        # closed form (decimal, 150 digits): Samejima GRM / Muraki a^2 Var per item; rtol 1e-12
        a, b, models, _ = _mixed_arrays()
        I = irt.information(self.theta, a, b, model=models)
        for i, (ai, bi, mi) in enumerate(MIXED):
            assert_allclose(I[:, i], ref_information(self.theta, ai, bi, mi), rtol=1e-12, atol=0)

    def test_item_params_records_category_counts(self):
        a, b, models, _ = _mixed_arrays()
        p = irt.item_params(a, b, models)
        assert_array_equal(p.n_cat, [len(bi) + 1 for _, bi, _ in MIXED])
        assert_array_equal(p.is_gpcm, [m == "gpcm" for m in models])
        assert p.kmax == 7 and p.n_items == len(MIXED)


# --------------------------------------------------------------------------
# Extreme parameters: |theta| <= 10, a up to 10, thresholds in +-10
# --------------------------------------------------------------------------
EXTREME = [  # (a, thresholds, model, atol on log P)
    # log P tolerance: x = a (theta - b) reaches 200 and GPCM cumulative steps 1000, so the rounding of x
    # itself is ~1e-13 absolute (1e-12 once up to five steps are summed).
    (10.0, (-10.0, 10.0), "grm", 1e-13),
    (10.0, (-10.0, -9.999999, 10.0), "grm", 1e-13),  # nearly tied thresholds: tiny middle category
    (10.0, (9.0, 9.5, 10.0), "grm", 1e-13),
    (10.0, (-10.0,), "grm", 1e-13),
    (0.05, (-10.0, 0.0, 10.0), "grm", 1e-13),
    (10.0, (10.0, -10.0), "gpcm", 1e-13),  # reversed steps
    (10.0, (-10.0, -5.0, 0.0, 5.0, 10.0), "gpcm", 1e-12),
    (10.0, (10.0, 10.0, 10.0, 10.0, 10.0), "gpcm", 1e-12),  # top category ~ exp(-1000) at theta = -10
    (0.05, (-10.0, 10.0), "gpcm", 1e-13),
]
THETA_X = np.linspace(-10, 10, 41)


class TestExtremes:
    @pytest.mark.parametrize("a,b,model,log_atol", EXTREME)
    def test_valid_and_accurate(self, a, b, model, log_atol):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow / invalid / divide warnings either
            P = irt.probabilities(THETA_X, [a], [list(b)], model=model)[:, 0]
            logP = irt.log_probabilities(THETA_X, [a], [list(b)], model=model)[:, 0]
            Pd, dP, d2P = irt.derivatives(THETA_X, [a], [list(b)], model=model)
            I = irt.information(THETA_X, [a], [list(b)], model=model)[:, 0]
        assert np.all(np.isfinite(P)) and np.all((P >= 0) & (P <= 1))
        assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)  # definition, atol 1e-12
        assert np.all(np.isfinite(logP)) and np.all(logP <= 0)  # logs stay finite although P underflows
        assert np.all(np.isfinite(dP)) and np.all(np.isfinite(d2P))
        assert np.all(np.isfinite(I)) and np.all(I >= 0)
        # closed form (decimal, 150 digits): log-probabilities rtol 1e-12, atol per case (see EXTREME)
        assert_allclose(logP, ref_logprobs(THETA_X, a, b, model), rtol=1e-12, atol=log_atol)
        # closed form (decimal, 150 digits): information down to 1e-80, rtol 1e-10
        assert_allclose(I, ref_information(THETA_X, a, b, model), rtol=1e-10, atol=1e-300)

    @pytest.mark.parametrize("gap", [1e-6, 1e-12, 1e-200])
    def test_grm_nearly_tied_thresholds_keep_a_finite_middle_category(self, gap):
        # regression: the middle category's sinh((x_k - x_{k+1}) / 2) was formed from x_k - x_{k+1}, which
        # cancels: a 1e-6 gap lost 9 digits at theta = 6.5 and a 1e-164 gap gave log P = -inf.
        # closed form (decimal, 300 digits: the 1e-200 gap must survive 1 - P*), rtol 1e-12, atol 1e-12
        b = (0.0, gap, 2.0)  # distinct doubles (0 + 1e-200 is representable)
        theta = np.linspace(-10, 10, 21)
        logP = irt.log_probabilities(theta, [3.0], [list(b)])[:, 0]
        assert np.all(np.isfinite(logP))
        assert_allclose(logP, ref_logprobs(theta, 3.0, b, "grm", prec=300), rtol=1e-12, atol=1e-12)

    def test_grm_probabilities_never_exceed_one(self):
        # regression: with a = 10, b = (-10, -9.999999, 10) the middle-category formula cancelled terms of
        # size 100 and returned P = 1 + 7.1e-15 at theta in [-2.5, 2.5]; definition: 0 <= P <= 1 exactly
        P = irt.probabilities(np.linspace(-10, 10, 41), [10.0], [[-10.0, -9.999999, 10.0]])
        assert P.max() <= 1.0 and P.min() >= 0.0
        assert np.all(irt.log_probabilities(np.linspace(-10, 10, 41), [10.0], [[-10.0, -9.999999, 10.0]]) <= 0)

    def test_grm_information_keeps_relative_accuracy_far_above_thresholds(self):
        # regression: W = P*(1 - P*) was formed as s * (1 - s), which is 0 once s rounds to 1, so the GRM
        # information at a (theta - b) >= 37 was exactly 0 (and 1e-3..70% wrong for 30..37).
        # closed form a^2 e^{-x} / (1 + e^{-x})^2 with math.exp, rtol 1e-12
        x = np.array([20.0, 30.0, 35.0, 37.0, 40.0, 60.0])
        I = irt.information(x, [1.0], [0.0], model="grm")[:, 0]
        expected = [math.exp(-v) / (1 + math.exp(-v)) ** 2 for v in x]
        assert_allclose(I, expected, rtol=1e-12, atol=0)
        assert np.all(I > 0)


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------
class TestInputValidation:
    @pytest.mark.parametrize("a,b,model,match", [
        ([0.0], [0.0], "grm", r"item 0: slope a must be finite and > 0, got 0\.0"),
        ([1.0, -1.0], [0.0, 1.0], "grm", r"item 1: slope a must be finite and > 0"),
        ([np.nan], [0.0], "grm", r"item 0: slope a"),
        ([np.inf], [0.0], "grm", r"item 0: slope a"),
        ([1.0], [[np.nan, 0.5]], "grm", r"item 0: thresholds must be finite, with NaN only as trailing padding"),
        ([1.0], [[0.0, np.inf]], "grm", r"item 0: thresholds must be finite"),
        ([1.0, 1.0], [[0.0, 1.0], [np.nan, np.nan]], "grm", r"item 1: needs at least one threshold"),
        ([1.0, 1.0], [0.0], "grm", r"a must have shape \(n_items,\)"),
        ([1.0], np.zeros((1, 0)), "grm", r"at least one threshold"),
        ([1.0], [0.0], "rasch", r"unknown model 'rasch'"),
        ([1.0, 1.0], [0.0, 1.0], ["grm"], r"model must be a string or one per item"),
    ])
    def test_item_params_errors(self, a, b, model, match):
        with pytest.raises(InvalidBankError, match=match):
            irt.item_params(a, b, model)

    def test_model_names_case_insensitive(self):
        p = irt.item_params([1.0, 1.0], [0.0, 1.0], ["GRM", "Gpcm"])
        assert_array_equal(p.is_gpcm, [False, True])

    @pytest.mark.parametrize("theta", [np.nan, np.inf, [[0.0, 1.0]]])
    def test_bad_theta(self, theta):
        with pytest.raises(ValueError, match="theta"):
            irt.probabilities(theta, [1.0], [0.0])

    @pytest.mark.parametrize("theta", [np.nan, np.inf, [[0.0, 1.0]], "high", [0.0, "x"]])
    @pytest.mark.parametrize("fn", [irt.probabilities, irt.log_probabilities, irt.information, irt.derivatives])
    def test_bad_theta_is_a_domain_error(self, theta, fn):
        with pytest.raises(InvalidDataError, match="theta") as exc:
            fn(theta, [1.0], [0.0])
        assert exc.value.code == "invalid-data" and exc.value.fields.get("field") == "theta"

    @pytest.mark.parametrize("a,b", [(["x"], [0.0]), ([1.0], [["low", 1.0]]), ([1.0], [[0.0, [1.0]]])])
    def test_non_numeric_parameters_are_a_domain_error(self, a, b):
        with pytest.raises(InvalidBankError, match="item parameters must be numbers"):
            irt.item_params(a, b)


# --------------------------------------------------------------------------
# Third and fourth log-derivatives (used by the modal estimators)
# --------------------------------------------------------------------------
def _dec_logp(t: Decimal, a, b, model):
    """log P_k at a Decimal θ (closed form, 150 digits): Samejima's GRM / Muraki's GPCM."""
    ad = _d(a)
    if model == "grm":
        star = [Decimal(1)] + [_dec_logistic(ad * (t - _d(bk))) for bk in b] + [Decimal(0)]
        return [(star[k] - star[k + 1]).ln() for k in range(len(b) + 1)]
    z = [Decimal(0)]
    for bv in b:
        z.append(z[-1] + ad * (t - _d(bv)))
    tot = sum(zk.exp() for zk in z)
    return [zk - tot.ln() for zk in z]


@pytest.mark.parametrize("a,b,model", ITEMS)
def test_log_derivatives_up_to_fourth_order(a, b, model):
    # d_j = ∂^j log P_k / ∂θ^j of irt._terms against central differences of the closed-form log P in
    # 150-digit decimal arithmetic with h = 1e-20 (truncation ~h² = 1e-40, rounding ~1e-150/h⁴):
    # exact to double precision; rtol 1e-12, atol 1e-12 a^j
    theta = np.linspace(-3.0, 3.0, 7)
    P, *d = irt._terms(theta, irt.item_params([a], [list(b)], model), 4)
    assert_allclose(P[:, :, 0].T, ref_probs(theta, a, b, model), rtol=1e-12)  # closed form (decimal)
    with localcontext() as ctx:
        ctx.prec = _PREC
        h = Decimal("1e-20")
        for q, t in enumerate(theta):
            f = [_dec_logp(_d(t) + i * h, a, b, model) for i in (-2, -1, 0, 1, 2)]
            for k in range(len(b) + 1):
                m2, m1, f0, p1, p2 = (row[k] for row in f)
                ref = [(p1 - m1) / (2 * h), (p1 - 2 * f0 + m1) / h ** 2, (p2 - 2 * p1 + 2 * m1 - m2) / (2 * h ** 3),
                       (p2 - 4 * p1 + 6 * f0 - 4 * m1 + m2) / h ** 4]
                for j in range(4):
                    assert_allclose(d[j][k, q, 0], float(ref[j]), rtol=1e-12, atol=1e-12 * a ** (j + 1))


def test_information_blocks_equal_one_call():
    # information() works in blocks of θ rows; block edges must not change a value (exact equality
    # with item-by-item calls at each θ, the same arithmetic)
    rng = np.random.default_rng(4)
    n = 300
    a = rng.uniform(0.5, 3.0, n)
    b = np.sort(rng.normal(0.0, 1.0, (n, 4)), axis=1)
    theta = np.linspace(-6, 6, 1201)
    I = irt.information(theta, a, b)
    for q in (0, 43, 44, 600, 1200):
        assert_array_equal(I[q], irt.information(theta[q:q + 1], a, b)[0])

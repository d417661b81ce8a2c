"""Reference tests for the item-selection criteria of :mod:`cat_prom.selection`.

Expected values are computed in this file and carry provenance and tolerance:

* ``irt.information`` -- MFI reads information from a 0.01-step table by linear
  interpolation; the reference is the model's information evaluated at θ̂ itself.
* ``scipy.integrate.quad`` -- MPWI as :math:`\\int I_i(\\theta)\\pi(\\theta\\mid x)d\\theta`
  with a closed-form likelihood and finite-difference information, over the real line.
* ``brute force`` -- KL and MEPV from their defining formulas (Chang & Ying 1996;
  van der Linden & Pashley 2010) written as explicit Python loops over items,
  categories and grid nodes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate

from cat_prom import CatSession, irt, selection
from cat_prom.bank import ItemBank

RNG = np.random.default_rng(20261122)
N_ITEMS = 25
_A = RNG.uniform(0.6, 3.0, N_ITEMS)
_NCAT = RNG.integers(2, 6, N_ITEMS)  # 2..5 categories
_B = np.full((N_ITEMS, 4), np.nan)
for _i in range(N_ITEMS):
    _B[_i, : _NCAT[_i] - 1] = np.sort(RNG.normal(0.3, 1.2, _NCAT[_i] - 1)) + np.arange(_NCAT[_i] - 1) * 0.05
_MODELS = ["gpcm" if i % 4 == 3 else "grm" for i in range(N_ITEMS)]
BANK = ItemBank.from_params(_A, _B, _MODELS, id="sel")
GRID = np.linspace(-6, 6, 81)
TABLES = BANK.grid(GRID)
FORM = [(float(_A[i]), tuple(_B[i, : _NCAT[i] - 1]), _MODELS[i]) for i in range(N_ITEMS)]


# ---------------------------------------------------------------- references
def ref_probs(theta, a, thr, model):
    """Closed form (Samejima 1969 GRM; Muraki 1992 GPCM), no cat_prom code."""
    if model == "grm":
        star = [1.0] + [1.0 / (1.0 + math.exp(-a * (theta - bk))) for bk in thr] + [0.0]
        return np.array([star[k] - star[k + 1] for k in range(len(thr) + 1)])
    z = np.concatenate([[0.0], np.cumsum([a * (theta - bk) for bk in thr])])
    e = np.exp(z - z.max())
    return e / e.sum()


def ref_info(theta, a, thr, model, h=1e-3):
    """sum_k P'^2/P with P' from a 5-point stencil of the closed form."""
    f = lambda t: ref_probs(t, a, thr, model)
    d1 = (-f(theta + 2 * h) + 8 * f(theta + h) - 8 * f(theta - h) + f(theta - 2 * h)) / (12 * h)
    P = f(theta)
    ok = P > 1e-300
    return float(np.sum(d1[ok] ** 2 / P[ok]))


ANSWERS = {i: min(k, int(_NCAT[i]) - 1) for i, k in {0: 2, 3: 1, 7: 0, 11: 1}.items()}  # item -> category


def ref_loglik(theta):
    s = 0.0
    for i, k in ANSWERS.items():
        p = ref_probs(theta, *FORM[i])[k]
        if p <= 0:
            return -math.inf
        s += math.log(p)
    return s


def grid_posterior():
    lp = np.array([ref_loglik(t) for t in GRID]) - 0.5 * GRID ** 2
    w = np.exp(lp - lp.max())
    return w / w.sum()


POST = grid_posterior()
THETA_HAT = float(POST @ GRID)


# ---------------------------------------------------------------------- MFI
class TestMFI:
    @pytest.mark.parametrize("theta", [-5.997, -2.345, -0.5, 0.0, 0.123456, 1.005, 3.3, 5.999])
    def test_interpolated_information_matches_model(self, theta):
        got = selection.mfi(TABLES, theta)
        exact = irt.information(np.array([theta]), BANK.params)[0]
        # linear interpolation on a 0.01 grid: error <= h^2/8 max|I"| (~1.25e-5 a^4 scale):
        # rtol 1e-3 of the item information plus atol 2e-4 where it is tiny
        assert_allclose(got, exact, rtol=1e-3, atol=2e-4)

    @pytest.mark.parametrize("theta", np.linspace(-3, 3, 13))
    def test_argmax_is_argmax_of_information(self, theta):
        got = selection.mfi(TABLES, theta)
        exact = irt.information(np.array([theta]), BANK.params)[0]
        best = int(np.argmax(got))
        # the interpolation error (< 2e-4) cannot reorder items whose information differs by more
        srt = np.sort(exact)
        if srt[-1] - srt[-2] > 5e-4:
            assert best == int(np.argmax(exact))
        else:
            assert exact[best] >= srt[-1] - 5e-4

    def test_independent_information(self):
        # the table itself against a finite-difference closed form at a few nodes (rtol 1e-6)
        for q in (10, 40, 55, 70):
            ref = np.array([ref_info(GRID[q], *FORM[i]) for i in range(N_ITEMS)])
            assert_allclose(TABLES.info[q], ref, rtol=1e-6, atol=1e-12)

    def test_session_offers_argmax_over_eligible(self):
        s = CatSession(BANK, {"selection": "mfi", "se_target": None, "max_items": 20}, seed=1)
        for _ in range(6):
            j = BANK.index(s.current_item.id)
            asked = {BANK.index(e["item_id"]) for e in s.log}
            scores = selection.mfi(TABLES, s.theta) if s.log else selection.mfi(TABLES, 0.0)
            cand = [i for i in range(N_ITEMS) if i not in asked]
            assert j == max(cand, key=lambda i: scores[i])
            s.answer(s.current_item.id, 1)


# --------------------------------------------------------------------- MPWI
class TestMPWI:
    def test_against_quad(self):
        got = selection.mpwi(TABLES, THETA_HAT, POST)
        dens = lambda t: math.exp(ref_loglik(t) - 0.5 * t * t)
        kw = dict(epsabs=0.0, epsrel=1e-10, limit=200, points=[-2.0, 0.0, 2.0])
        z0 = integrate.quad(dens, -11, 11, **kw)[0]
        for i in range(N_ITEMS):
            num = integrate.quad(lambda t: ref_info(t, *FORM[i]) * dens(t), -11, 11, **kw)[0]
            # scipy.integrate.quad of I_i(theta) pi(theta|x) over the real line; the engine's
            # 81-point grid on [-6, 6] (stencil information rtol 1e-6): rtol 1e-5
            assert_allclose(got[i], num / z0, rtol=1e-5)

    def test_prior_only_equals_prior_weighted_information(self):
        w = np.exp(-0.5 * GRID ** 2)
        w /= w.sum()
        got = selection.mpwi(TABLES, 0.0, w)
        for i in (0, 5, 13):
            num = integrate.quad(lambda t: ref_info(t, *FORM[i]) * math.exp(-0.5 * t * t), -11, 11,
                                 epsabs=0, epsrel=1e-10)[0] / math.sqrt(2 * math.pi)
            # scipy.integrate.quad against N(0,1): rtol 1e-5
            assert_allclose(got[i], num, rtol=1e-5)


# ----------------------------------------------------------------------- KL
def brute_kl(theta_hat, posterior, exact_p_hat=True):
    """sum_q pi_q sum_k P_k(theta_hat) log(P_k(theta_hat) / P_k(theta_q)), explicit loops."""
    out = np.zeros(N_ITEMS)
    for i in range(N_ITEMS):
        ph = ref_probs(theta_hat, *FORM[i])
        total = 0.0
        for q, t in enumerate(GRID):
            pq = ref_probs(t, *FORM[i])
            for k in range(len(ph)):
                if ph[k] > 0:
                    total += posterior[q] * ph[k] * (math.log(ph[k]) - math.log(max(pq[k], 1e-323)))
        out[i] = total
    return out


class TestKL:
    @pytest.mark.parametrize("q", [30, 43, 47, 60])
    def test_at_grid_node_equals_brute_force(self, q):
        got = selection.kl(TABLES, float(GRID[q]), POST)
        # brute-force formula with closed-form probabilities; at a node the engine needs no
        # interpolation: rtol 1e-8 (closed-form GRM differences lose ~1e-12 in the tails)
        assert_allclose(got, brute_kl(float(GRID[q]), POST), rtol=1e-8, atol=1e-12)

    def test_between_nodes_within_interpolation_error(self):
        # The engine interpolates log P linearly between the two nearest nodes (step 0.15)
        # instead of evaluating P at theta_hat. Error O(h^2/8 * a^2 |d2 log P|): observed up to
        # 3 % relative on this bank. Tolerance: rtol 5e-2, and the choice must agree.
        got = selection.kl(TABLES, THETA_HAT, POST)
        ref = brute_kl(THETA_HAT, POST)
        assert_allclose(got, ref, rtol=5e-2)
        assert int(np.argmax(got)) == int(np.argmax(ref))

    def test_kl_nonnegative_and_zero_for_point_posterior(self):
        q = 47
        point = np.zeros_like(GRID)
        point[q] = 1.0
        # KL(P(theta_q) || P(theta_q)) = 0 exactly (closed form)
        assert_allclose(selection.kl(TABLES, float(GRID[q]), point), 0.0, atol=1e-12)
        assert np.all(selection.kl(TABLES, float(GRID[q]), POST) >= -1e-12)


# --------------------------------------------------------------------- MEPV
def brute_epv(posterior):
    """Expected posterior variance after one more answer, per item, by explicit loops."""
    out = np.zeros(N_ITEMS)
    for i in range(N_ITEMS):
        ncat = len(FORM[i][1]) + 1
        epv = 0.0
        for k in range(ncat):
            lik = [ref_probs(t, *FORM[i])[k] for t in GRID]
            pk = sum(posterior[q] * lik[q] for q in range(len(GRID)))  # P(X_i = k | x)
            if pk <= 0:
                continue
            new = [posterior[q] * lik[q] / pk for q in range(len(GRID))]
            m = sum(new[q] * GRID[q] for q in range(len(GRID)))
            v = sum(new[q] * (GRID[q] - m) ** 2 for q in range(len(GRID)))
            epv += pk * v
        out[i] = epv
    return out


class TestMEPV:
    def test_equals_brute_force_expected_posterior_variance(self):
        got = selection.mepv(TABLES, THETA_HAT, POST)
        ref = brute_epv(POST)
        # explicit loops on the same grid; the engine's m2 - m1^2/m0 form cancels ~1e-10: rtol 1e-8
        assert_allclose(-got, ref, rtol=1e-8)

    def test_epv_below_current_variance(self):
        # law of total variance: E[Var(theta | x, X)] <= Var(theta | x) (closed form identity)
        var = float(POST @ GRID ** 2 - (POST @ GRID) ** 2)
        assert np.all(-selection.mepv(TABLES, THETA_HAT, POST) <= var + 1e-12)

    def test_session_chooses_min_epv(self):
        s = CatSession(BANK, {"selection": "mepv", "se_target": None, "max_items": 20}, seed=3)
        for k in (2, 1, 0, 1):
            s.answer(s.current_item.id, min(k, BANK.n_cat[BANK.index(s.current_item.id)] - 1))
        asked = {BANK.index(e["item_id"]) for e in s.log}
        ref = brute_epv(s.posterior)
        cand = [i for i in range(N_ITEMS) if i not in asked]
        assert BANK.index(s.current_item.id) == min(cand, key=lambda i: ref[i])


@pytest.mark.parametrize("sel", ["mpwi", "kl", "mepv"])
def test_session_offers_argmax_of_criterion(sel):
    s = CatSession(BANK, {"selection": sel, "se_target": None, "max_items": 20}, seed=5)
    for k in (1, 0, 2, 1, 1):
        j = BANK.index(s.current_item.id)
        s.answer(s.current_item.id, min(k, BANK.n_cat[j] - 1))
        if s.finished:
            break
        asked = {BANK.index(e["item_id"]) for e in s.log}
        scores = selection.criterion(sel, TABLES, s.theta, s.posterior)
        cand = [i for i in range(N_ITEMS) if i not in asked]
        assert BANK.index(s.current_item.id) == max(cand, key=lambda i: scores[i])


# --------------------------------------------------------------- batches (S rows at once)
def _posterior_of(answers):
    """Grid posterior (N(0,1) prior) of the answers {item: category}, closed-form likelihood, no cat_prom code."""
    lp = np.array([sum(math.log(ref_probs(t, *FORM[i])[k]) for i, k in answers.items()) for t in GRID], dtype=float)
    lp -= 0.5 * GRID ** 2
    w = np.exp(lp - lp.max())
    return w / w.sum()


BATCH_ANSWERS = [{}, {0: 1, 5: 0}, {2: 1, 9: 1, 14: 0, 20: 1}, {1: 0, 3: 0, 7: 0}]
BATCH_POST = np.stack([_posterior_of({i: min(k, int(_NCAT[i]) - 1) for i, k in a.items()}) for a in BATCH_ANSWERS])
BATCH_THETA = np.r_[BATCH_POST @ GRID]


class TestBatch:
    """selection.scores on S posteriors at once: each row against the brute-force formula for that row alone."""

    def test_kl_rows_equal_brute_force(self):
        got = selection.scores("kl", TABLES, BATCH_THETA, BATCH_POST)
        assert got.shape == (len(BATCH_ANSWERS), N_ITEMS)
        for r in range(len(BATCH_ANSWERS)):
            # brute-force KL (explicit loops, closed-form P) at θ̂ between nodes: rtol 1e-8 (as at a node:
            # the engine evaluates P at θ̂ exactly)
            assert_allclose(got[r], brute_kl(float(BATCH_THETA[r]), BATCH_POST[r]), rtol=1e-8, atol=1e-12)

    def test_mepv_rows_equal_brute_force(self):
        got = selection.scores("mepv", TABLES, BATCH_THETA, BATCH_POST)
        for r in range(len(BATCH_ANSWERS)):
            # explicit loops on the same grid; m2 - m1^2/m0 cancels ~1e-10: rtol 1e-8
            assert_allclose(-got[r], brute_epv(BATCH_POST[r]), rtol=1e-8)

    def test_mpwi_rows_equal_posterior_weighted_stencil_information(self):
        got = selection.scores("mpwi", TABLES, BATCH_THETA, BATCH_POST)
        info = np.array([[ref_info(t, *FORM[i]) for i in range(N_ITEMS)] for t in GRID])  # (Q, N) closed form
        for r in range(len(BATCH_ANSWERS)):
            ref = [sum(BATCH_POST[r, q] * info[q, i] for q in range(len(GRID))) for i in range(N_ITEMS)]
            # finite-difference information (rtol 1e-6, see test_independent_information): rtol 1e-6
            assert_allclose(got[r], ref, rtol=1e-6, atol=1e-12)

    def test_mfi_rows_equal_model_information(self):
        theta = np.array([-6.5, -2.345, 0.0, 0.123456, 3.3, 7.0])  # beyond both ends of the grid too
        got = selection.scores("mfi", TABLES, theta, None)
        exact = irt.information(np.clip(theta, -6, 6), BANK.params)
        # linear interpolation on the 0.01 grid (see TestMFI): rtol 1e-3, atol 2e-4; the ends clamp
        assert_allclose(got, exact, rtol=1e-3, atol=2e-4)
        for r, t in enumerate(theta):
            assert np.array_equal(got[r], selection.mfi(TABLES, float(t)))  # one θ: the same bits

    def test_public_criteria_take_one_or_many(self):
        for name in ("mpwi", "kl", "mepv"):
            many = selection.criterion(name, TABLES, BATCH_THETA, BATCH_POST)
            one = selection.criterion(name, TABLES, float(BATCH_THETA[2]), BATCH_POST[2])
            assert many.shape == (4, N_ITEMS) and one.shape == (N_ITEMS,)
            assert_allclose(many[2], one, rtol=1e-12, atol=1e-15)

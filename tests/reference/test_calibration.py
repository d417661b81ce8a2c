"""Reference values for cat_prom.calibration from published mirt/ltm analyses.

Data
----
LSAT7 and LSAT6: five dichotomous Law School Admission Test items, 1000
examinees each, given as the 32 response patterns (items 1-5, in
lexicographic order 00000, 00001, ..., 11111) with their frequencies.

* LSAT7 (Bock & Lieberman, 1970; R package mirt, ``data(LSAT7)``). The
  frequencies below reproduce the observed summed-score counts printed in
  mirt's own test suite (``tests/testthat/test-01-mirtOne.R``, EAPsum table:
  12, 40, 114, 205, 321, 308), and the 2PL fit reproduces mirt's published
  estimates to 4 decimals, which pins down the table.
* LSAT6 (Thissen, 1982; mirt ``data(LSAT6)``, ltm ``data(LSAT)``): pattern
  frequencies as embedded in jMetrik's MarginalMaximumLikelihoodEstimationTest
  (item p-values .924 .709 .553 .763 .870, matching ltm's ``descript(LSAT)``).

Reference estimates (mirt slope-intercept metric, D = 1: P = 1/(1+exp(-(a1 θ + d))), b = -d/a1)
----------------------------------------------------------------------------------------------
* LSAT7 2PL: mirt ``test-01-mirtOne.R``, ``mirt(expand.table(LSAT7), 1)`` with
  ``SE.type='SEM'`` (tight EM tolerance): a1 = .9876 1.0808 1.7075 .765 .7357,
  d = 1.8559 .808 1.8052 .486 1.8545; SEM 95% intervals give the SEs used below.
  S-X² (same file, ``itemfit(modm1)``): 4.749440 14.451071 1.270381 5.237400
  0.941125, df 2 each. Log-likelihood -2658.805 (mirt iteration log in the
  ggmirt README).
* LSAT6 2PL: log-likelihood -2466.653 (mirt test-01 QMCEM fit; ltm
  ``ltm(LSAT ~ z1)`` summary); IRT parameters from mirt ``coef(IRTpars=TRUE)``
  as quoted in jMetrik's test (3 decimals, mirt TOL 1e-3):
  a = .825 .724 .888 .689 .659, b = -3.362 -1.368 -.280 -1.864 -3.117;
  S-X² p-value of item 1 = .7984 (mirt test-01, ``itemfit(mod)$p.S_X2[1]``).
"""
import itertools

import numpy as np
import pytest

from cat_prom import calibration as cal

PATTERNS = np.array(list(itertools.product([0, 1], repeat=5)))
LSAT7_FREQ = np.array([12, 19, 1, 7, 3, 19, 3, 17, 10, 5, 3, 7, 7, 23, 8, 28,
                       7, 39, 11, 34, 14, 51, 15, 90, 6, 25, 7, 35, 18, 136, 32, 308])
LSAT6_FREQ = np.array([3, 6, 2, 11, 1, 1, 3, 4, 1, 8, 0, 16, 0, 3, 2, 15,
                       10, 29, 14, 81, 3, 28, 15, 80, 16, 56, 21, 173, 11, 61, 28, 298])
# mirt's default quadrature for one factor: 41 points on ±0.8*sqrt(41)
MIRT_QUAD = dict(n_quad=41, quad_bound=0.8 * np.sqrt(41))


@pytest.fixture(scope="module")
def lsat7():
    return cal.calibrate(PATTERNS, weights=LSAT7_FREQ, tol=1e-6, se=True, **MIRT_QUAD)


def test_lsat_data_margins():
    # published margins: summed-score counts (mirt test-01 EAPsum) and item p-values (ltm descript)
    scores7 = np.bincount(PATTERNS.sum(1), weights=LSAT7_FREQ)
    assert scores7.tolist() == [12, 40, 114, 205, 321, 308]
    assert LSAT6_FREQ.sum() == 1000
    np.testing.assert_allclose(LSAT6_FREQ @ PATTERNS / 1000, [.924, .709, .553, .763, .870])


def test_lsat7_2pl_matches_mirt(lsat7):
    a1 = [0.9876, 1.0808, 1.7075, 0.765, 0.7357]   # mirt test-01 (SEM run), 4 decimals
    d = [1.8559, 0.808, 1.8052, 0.486, 1.8545]
    assert lsat7.converged
    np.testing.assert_allclose(lsat7.a, a1, atol=2e-4)            # measured max diff 5e-5
    np.testing.assert_allclose(-lsat7.a * lsat7.b[:, 0], d, atol=2e-4)
    assert lsat7.loglik == pytest.approx(-2658.805, abs=2e-3)      # mirt/ggmirt log, 3 decimals


def test_lsat7_se_close_to_mirt_sem(lsat7):
    # mirt SEM 95% CIs for a1 -> SE = width / (2 * 1.96); ours are cross-product (XPD) SEs,
    # which differ from SEM by a few percent (measured max rel. diff 3.6%)
    ci = np.array([[0.6367, 1.3384], [0.7604, 1.4013], [1.0868, 2.3281], [0.5065, 1.0235], [0.4246, 1.0467]])
    se_mirt = (ci[:, 1] - ci[:, 0]) / (2 * 1.959964)
    np.testing.assert_allclose(lsat7.se_a, se_mirt, rtol=0.07)


def test_lsat7_sx2_matches_mirt(lsat7):
    X = np.repeat(PATTERNS, LSAT7_FREQ, axis=0)
    fit = cal.item_fit_sx2(X, lsat7, n_quad=41, bound=0.8 * np.sqrt(41))
    ref = [4.749440, 14.451071, 1.270381, 5.237400, 0.941125]     # mirt itemfit S_X2, test-01
    # mirt's reference fit used its default TOL (1e-4) so its parameters differ from ours
    # in the 4th decimal; measured max abs diff 0.0025
    np.testing.assert_allclose(fit.s_x2, ref, atol=0.01)
    assert fit.df.tolist() == [2, 2, 2, 2, 2]                       # mirt df.S_X2
    assert fit.n_persons == 1000


def test_lsat6_2pl_matches_mirt_and_ltm():
    res = cal.calibrate(PATTERNS, weights=LSAT6_FREQ, tol=1e-6, **MIRT_QUAD)
    assert res.loglik == pytest.approx(-2466.653, abs=2e-3)       # mirt test-01 / ltm summary
    a_ref = [0.825, 0.724, 0.888, 0.689, 0.659]                    # mirt, TOL 1e-3, 3 decimals
    b_ref = [-3.362, -1.368, -0.280, -1.864, -3.117]
    np.testing.assert_allclose(res.a, a_ref, atol=0.005)           # measured max diff 0.003
    np.testing.assert_allclose(res.b[:, 0], b_ref, atol=0.012)     # measured max diff 0.009 (item 5, mirt TOL 1e-3)
    fit = cal.item_fit_sx2(np.repeat(PATTERNS, LSAT6_FREQ, axis=0), res, n_quad=41, bound=0.8 * np.sqrt(41))
    assert fit.p_value[0] == pytest.approx(0.7984, abs=0.01)       # mirt itemfit p.S_X2[1]


def test_pattern_weights_equal_expanded_data():
    expanded = np.repeat(PATTERNS, LSAT7_FREQ, axis=0)
    r1 = cal.calibrate(PATTERNS, weights=LSAT7_FREQ, tol=1e-7)
    r2 = cal.calibrate(expanded, tol=1e-7)
    np.testing.assert_allclose(r1.a, r2.a, atol=1e-6)
    np.testing.assert_allclose(r1.b, r2.b, atol=1e-6)
    assert r1.loglik == pytest.approx(r2.loglik, rel=1e-10)

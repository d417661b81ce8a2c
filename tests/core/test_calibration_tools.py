"""Simulation, information, reliability, S-X² item fit and linking."""
import numpy as np
import pytest
from scipy import stats

from cat_prom import calibration as cal
from cat_prom import irt
from cat_prom.bank import ItemBank
from cat_prom.errors import CalibrationError, InvalidDataError


def test_simulate_responses_frequencies_match_probabilities():
    rng = np.random.default_rng(0)
    a = np.array([1.5, 0.8, 2.0])
    b = np.array([[-1.0, 0.0, 1.0], [-0.5, 0.5, np.nan], [0.3, np.nan, np.nan]])
    models = ["grm", "gpcm", "grm"]
    theta = np.full(40000, 0.4)
    X = cal.simulate_responses(theta, (a, b, models), rng)
    assert X.shape == (40000, 3) and X.dtype.kind == "i"
    P = irt.probabilities([0.4], a, b, models)[0]
    for i, k in enumerate([4, 3, 2]):
        freq = np.bincount(X[:, i], minlength=4) / X.shape[0]
        # binomial SE <= 0.0025 at n = 40000; 5 SE
        np.testing.assert_allclose(freq, P[i], atol=0.0125)
        assert X[:, i].max() < k
    m = np.zeros((5, 3), bool)
    m[0, 1] = True
    Y = cal.simulate_responses(np.zeros(5), (a, b, models), np.random.default_rng(1), missing=m)
    assert Y[0, 1] == -1 and (Y[1:] >= 0).all()
    with pytest.raises(InvalidDataError, match="Generator"):
        cal.simulate_responses(np.zeros(5), (a, b), 42)


def test_simulate_accepts_bank_and_is_reproducible():
    bank = ItemBank.from_params([1.0, 1.3], [[-1, 0, 1], [-0.5, 0.2, 0.9]])
    x1 = cal.simulate_responses(np.linspace(-2, 2, 50), bank, np.random.default_rng(3))
    x2 = cal.simulate_responses(np.linspace(-2, 2, 50), bank.params, np.random.default_rng(3))
    np.testing.assert_array_equal(x1, x2)


def test_test_information_and_marginal_reliability():
    a = np.array([1.0, 1.5])
    b = np.array([[0.0], [0.5]])
    th = np.linspace(-3, 3, 13)
    # 2PL closed form: a^2 P (1 - P)
    p1, p2 = 1 / (1 + np.exp(-a[0] * (th - 0.0))), 1 / (1 + np.exp(-a[1] * (th - 0.5)))
    np.testing.assert_allclose(cal.test_information(th, (a, b)), a[0] ** 2 * p1 * (1 - p1) + a[1] ** 2 * p2 * (1 - p2),
                               rtol=1e-10)
    # rho = 1 / (1 + E[1/I]) under N(0,1): constant information I gives I / (1 + I)
    rng = np.random.default_rng(0)
    big = (np.full(40, 2.0), rng.uniform(-0.2, 0.2, (40, 1)))
    rel = cal.marginal_reliability(big)
    info0 = cal.test_information([0.0], big)[0]
    assert 0.9 < rel < info0 / (1 + info0)      # information falls off in the tails
    small = (np.array([0.5]), np.array([[0.0]]))
    assert cal.marginal_reliability(small) < 0.1
    assert cal.marginal_reliability(big) > cal.marginal_reliability((np.full(10, 2.0), np.zeros((10, 1))))


def _transform(a, b, A, B):
    return a / A, A * b + B


@pytest.mark.parametrize("model", ["grm", "gpcm"])
def test_linking_recovers_known_constants_exactly(model):
    rng = np.random.default_rng(4)
    a = rng.uniform(0.8, 2.0, 10)
    b = np.sort(rng.normal(0, 1, (10, 3)), axis=1)
    A, B = 1.3, -0.45
    a_old, b_old = _transform(a, b, A, B)
    ids = [f"X{i}" for i in range(10)]
    new = ItemBank.from_params(a, b, model, ids=ids)
    old = ItemBank.from_params(a_old[:6], b_old[:6], model, ids=ids[:6])   # 6 common anchors
    for link, tol in ((cal.link_mean_sigma, 1e-12), (cal.link_stocking_lord, 1e-6)):
        res = link(new, old)
        assert res.anchors == tuple(ids[:6])
        assert res.A == pytest.approx(A, abs=tol) and res.B == pytest.approx(B, abs=tol)
        np.testing.assert_allclose(res.a, a_old, rtol=10 * tol)     # all new items, on the old metric
        np.testing.assert_allclose(res.b, b_old, atol=10 * tol)
    sl = cal.link_stocking_lord(new, old)
    assert sl.criterion < 1e-12 and sl.method == "stocking-lord"


def test_linking_with_bare_arrays_and_anchor_subset():
    a = np.array([1.0, 1.2, 0.9, 1.5])
    b = np.array([[-1.0, 0.0], [0.0, 1.0], [-0.5, 0.5], [0.2, 1.2]])
    a_old, b_old = _transform(a, b, 0.8, 0.3)
    res = cal.link_mean_sigma((a, b), (a_old, b_old), anchors=["I1", "I3"])
    assert (res.A, res.B) == pytest.approx((0.8, 0.3))
    with pytest.raises(CalibrationError, match="at least 2 anchor"):
        cal.link_mean_sigma((a, b), (a_old, b_old), anchors=["I1"])
    with pytest.raises(CalibrationError, match="not found"):
        cal.link_stocking_lord((a, b), (a_old, b_old), anchors=["I1", "Q9"])
    t = cal.transform_params((a, b), 0.8, 0.3)
    np.testing.assert_allclose(t.b, b_old)
    with pytest.raises(CalibrationError):
        cal.transform_params((a, b), -1.0, 0.0)


def test_separate_calibrations_linked_back():
    """Two groups from different populations, calibrated separately on their own N(0,1)
    metrics, are linked back with Stocking-Lord: A ~ sd ratio, B ~ mean shift."""
    rng = np.random.default_rng(9)
    a = rng.uniform(0.9, 2.0, 10)
    b = np.sort(rng.normal(0, 0.8, (10, 3)), axis=1)
    ids = [f"Z{i}" for i in range(10)]
    r_old = cal.calibrate(cal.simulate_responses(rng.normal(0, 1, 3000), (a, b), rng), ids=ids)
    r_new = cal.calibrate(cal.simulate_responses(rng.normal(0.6, 1.3, 3000), (a, b), rng), ids=ids)
    sl = cal.link_stocking_lord(r_new, r_old)
    # theta_old = A theta_new + B with theta_new = (theta - 0.6) / 1.3 -> A = 1.3, B = 0.6;
    # measured A 1.300, B 0.611 (mean-sigma: 1.272, 0.599)
    assert sl.A == pytest.approx(1.3, abs=0.08) and sl.B == pytest.approx(0.6, abs=0.08)


def _fit_pvalues(seed, n_persons=1500, n_items=10, misfit=False):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.9, 2.0, n_items)
    b = np.sort(rng.normal(0, 0.9, (n_items, 3)), axis=1)
    theta = rng.normal(size=n_persons)
    X = cal.simulate_responses(theta, (a, b), rng)
    if misfit:  # item 0 answered by a non-monotone (U-shaped) process: the GRM cannot fit it
        X[:, 0] = cal.simulate_responses(np.abs(theta) * 1.5 - 1.0, (a[:1], b[:1]), rng)[:, 0]
    res = cal.calibrate(X)
    return cal.item_fit_sx2(X, res)


def test_sx2_pvalues_roughly_uniform_for_fitting_items():
    p = np.concatenate([_fit_pvalues(s).p_value for s in range(4)])   # 40 items that fit
    assert np.isfinite(p).all()
    # KS against U(0,1); measured KS p = 0.66, mean p = 0.51, none below 0.01, 1 of 40 below 0.05
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.3 < p.mean() < 0.7
    assert (p < 0.01).sum() <= 2


def test_sx2_flags_misfitting_item():
    fit = _fit_pvalues(100, misfit=True)
    assert fit.p_value[0] < 1e-6                 # measured 4e-37
    assert np.median(fit.p_value[1:]) > 0.1


def test_sx2_complete_cases_only():
    rng = np.random.default_rng(5)
    a, b = np.array([1.2, 1.0, 1.5, 0.9]), np.array([[-1, 0], [0, 1], [-0.5, 0.5], [0, 0.8]])
    X = cal.simulate_responses(rng.normal(size=600), (a, b), rng).astype(float)
    X[:100, 1] = np.nan
    fit = cal.item_fit_sx2(X, (a, b))
    assert fit.n_persons == 500
    with pytest.raises(CalibrationError, match="complete cases"):
        cal.item_fit_sx2(np.full((3, 4), np.nan), (a, b))

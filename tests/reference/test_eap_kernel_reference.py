"""Reference tests for the batch EAP kernel :func:`cat_prom.grid.eap` (one row, a few rows, blocks).

The reference is ``scipy.integrate.quad`` of the posterior moments over the real line,
with the likelihood in closed form (Samejima's GRM, Muraki's GPCM) and no cat_prom code:

    E[θ | x] = ∫ θ L(x | θ) φ(θ) dθ / ∫ L(x | θ) φ(θ) dθ,   Var[θ | x] = E[(θ - E[θ | x])²].

The kernel integrates on an equally spaced grid (81 points on [-6, 6] in a CAT, a finer one
here), whose error for these smooth, fast-decaying integrands is far below the tolerance.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate

from cat_prom import grid

# (a, thresholds, model): a few items of 2-5 categories
FORM = [(1.6, (-1.2, -0.1, 0.9, 1.8), "grm"), (0.9, (-0.4, 0.7), "grm"), (2.3, (0.3,), "grm"),
        (1.2, (-1.0, 0.0, 1.3), "gpcm"), (0.7, (0.5, 1.5), "gpcm")]
# response patterns (category per item, None = not answered), prior (mean, sd)
CASES = [((0, 1, 0, 2, 1), (0.0, 1.0)), ((4, 2, 1, 3, 2), (0.0, 1.0)), ((None, 0, None, 0, None), (0.5, 1.5)),
         ((2, None, 1, None, 0), (-0.3, 0.8)), ((None,) * 5, (0.2, 1.2)), ((0, 0, 0, 0, 0), (0.0, 1.0))]


def probs(theta: float, a: float, thr: tuple, model: str) -> np.ndarray:
    """Closed-form category probabilities (Samejima 1969 GRM; Muraki 1992 GPCM)."""
    if model == "grm":
        star = [1.0] + [1.0 / (1.0 + math.exp(-a * (theta - b))) for b in thr] + [0.0]
        return np.array([star[k] - star[k + 1] for k in range(len(thr) + 1)])
    z = np.concatenate([[0.0], np.cumsum([a * (theta - b) for b in thr])])
    e = np.exp(z - z.max())
    return e / e.sum()


def log_lik(theta: float, pattern) -> float:
    return sum(math.log(probs(theta, *FORM[i])[k]) for i, k in enumerate(pattern) if k is not None)


def quad_moments(pattern, mean: float, sd: float) -> tuple[float, float]:
    """Posterior mean and SD by scipy.integrate.quad over (-12, 12) (the density is < 1e-30 beyond)."""
    dens = lambda t: math.exp(log_lik(t, pattern) - 0.5 * ((t - mean) / sd) ** 2)  # noqa: E731
    kw = dict(epsabs=0.0, epsrel=1e-12, limit=200, points=[mean - sd, mean, mean + sd])
    z = integrate.quad(dens, -12, 12, **kw)[0]
    m = integrate.quad(lambda t: t * dens(t), -12, 12, **kw)[0] / z
    v = integrate.quad(lambda t: (t - m) ** 2 * dens(t), -12, 12, **kw)[0] / z
    return m, math.sqrt(v)


REFERENCE = [quad_moments(p, *prior) for p, prior in CASES]
THETA = grid.nodes(-10.0, 10.0, 401)


def log_posteriors(rows: np.ndarray) -> np.ndarray:
    """(S, Q) unnormalised log posteriors of the cases named by ``rows``, plus a per-row constant."""
    out = np.empty((rows.shape[0], THETA.shape[0]))
    for r, c in enumerate(rows):
        pattern, (mean, sd) = CASES[c]
        out[r] = [log_lik(t, pattern) for t in THETA]
        out[r] += grid.normal_log_density(THETA, mean, sd) + 3.0 * r  # the constant must not matter
    return out


@pytest.mark.parametrize("S", [1, 4, 40, 700])  # one row (a session), a few rows, one block, several blocks
def test_batch_eap_equals_quad(S):
    rows = np.arange(S) % len(CASES)
    lp = log_posteriors(rows)
    W, mean, sd = grid.eap(lp, THETA)
    assert W.shape == lp.shape and mean.shape == sd.shape == (S,)
    assert_allclose(W.sum(axis=1), 1.0, rtol=1e-13)
    for r, c in enumerate(rows):
        m, s = REFERENCE[c]
        # scipy.integrate.quad (epsrel 1e-12) against a 401-point grid on [-10, 10]: rtol 1e-9
        assert mean[r] == pytest.approx(m, rel=1e-9, abs=1e-12)
        assert sd[r] == pytest.approx(s, rel=1e-9)


def test_one_row_and_blocks_agree_and_out_is_used():
    rows = np.arange(600) % len(CASES)
    lp = log_posteriors(rows)
    W, mean, sd = grid.eap(lp, THETA)
    for r in (0, 1, 299, 599):
        w1, m1, s1 = grid.eap(lp[r:r + 1], THETA)
        # the same sums in another order (vector vs einsum): 1e-14
        assert_allclose(w1[0], W[r], rtol=1e-14)
        assert m1[0] == pytest.approx(mean[r], rel=1e-13, abs=1e-15)
        assert s1[0] == pytest.approx(sd[r], rel=1e-13)
    out = np.empty_like(lp)
    W2, _, _ = grid.eap(lp, THETA, THETA * THETA, out=out)
    assert W2 is out and np.array_equal(out, W)
    one = np.empty((1, THETA.shape[0]))
    assert grid.eap(lp[:1], THETA, out=one)[0] is one


def test_point_mass_has_zero_sd():
    lp = np.full((2, THETA.shape[0]), -np.inf)
    lp[:, 200] = 0.0  # all the mass on θ = 0 (closed form: mean 0, sd 0)
    W, mean, sd = grid.eap(lp, THETA)
    assert np.array_equal(mean, [0.0, 0.0]) and np.array_equal(sd, [0.0, 0.0])
    W1, mean1, sd1 = grid.eap(lp[:1], THETA)
    assert mean1[0] == 0.0 and sd1[0] == 0.0

r"""Quadrature grids, normal priors and the one EAP kernel.

Every part of the engine that integrates over θ does it on an equally spaced
grid of nodes with weights from a normal density: scoring (EAP), the CAT's
posterior (sessions and simulations), calibration's E-step and item fit. This
module is the one place those grids, weights and the EAP of a batch of
posteriors are computed.

The posteriors of ``S`` persons on ``Q`` nodes are an ``(S, Q)`` array of
*unnormalised log* densities; :func:`eap` turns them into normalised weights
``W`` (``(S, Q)``), the posterior means (EAP θ, ``(S,)``) and posterior SDs
(``(S,)``), exactly as Bock & Mislevy (1982) define them on a grid:

.. math::

    W_{sq} = \frac{\exp \ell_{sq}}{\sum_r \exp \ell_{sr}},\qquad
    \hat\theta_s = \sum_q W_{sq}\,\theta_q,\qquad
    \mathrm{SD}_s = \Big(\sum_q W_{sq}\,\theta_q^2 - \hat\theta_s^2\Big)^{1/2}.

A single CAT session is the case ``S = 1``.

References
----------
Bock, R. D., & Mislevy, R. J. (1982). Adaptive EAP estimation of ability in a
microcomputer environment. *Applied Psychological Measurement*, 6, 431–444.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .errors import InvalidDesignError

__all__ = ["DEFAULT_GRID", "nodes", "normal_log_density", "normal_weights", "quadrature", "moment_matrix", "eap"]

#: (min, max, points) of the default scoring and CAT grid.
DEFAULT_GRID = (-6.0, 6.0, 81)
_ROWS = 256  # rows per cache-sized block in eap()


@lru_cache(maxsize=64)
def _nodes(lo: float, hi: float, n: int) -> np.ndarray:
    theta = np.linspace(lo, hi, n)
    theta.flags.writeable = False
    return theta


def nodes(lo: float = -6.0, hi: float = 6.0, n: int = 81) -> np.ndarray:
    """Equally spaced nodes on ``[lo, hi]``, shape ``(n,)``; read-only and shared (cached).

    Raises :class:`~cat_prom.errors.InvalidDesignError` for fewer than 2 nodes or an empty
    interval.
    """
    lo, hi, n = float(lo), float(hi), int(n)
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise InvalidDesignError(f"a grid needs finite min < max and at least 2 points; got [{lo}, {hi}], {n}",
                                 field="grid")
    return _nodes(lo, hi, n)


def normal_log_density(theta: np.ndarray, mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    r"""Unnormalised log density of :math:`N(\mu, \sigma^2)`: :math:`-\tfrac12 ((\theta-\mu)/\sigma)^2`."""
    z = (np.asarray(theta, dtype=float) - mean) / sd
    return -0.5 * z * z


def normal_weights(theta: np.ndarray, mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    r"""Quadrature weights :math:`w_q \propto \phi((\theta_q - \mu)/\sigma)`, summing to 1."""
    logw = normal_log_density(theta, mean, sd)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def quadrature(n_points: int = 61, bound: float = 6.0, mean: float = 0.0,
               sd: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Equally spaced quadrature on ``[-bound, bound]`` for a normal latent density.

    Parameters
    ----------
    n_points : int
        Number of nodes (>= 5).
    bound : float
        Nodes span ``[-bound, bound]``.
    mean, sd : float
        The latent normal :math:`N(\mu, \sigma^2)` whose density gives the weights.

    Returns
    -------
    nodes : ndarray, shape (n_points,)
    weights : ndarray, shape (n_points,)
        :math:`w_q \propto \phi((\theta_q - \mu)/\sigma)`, summing to 1.
    """
    if int(n_points) < 5 or not np.isfinite(bound) or bound <= 0:
        raise InvalidDesignError(f"quadrature needs >= 5 points and a positive bound; got {n_points}, {bound}",
                                 field="grid")
    th = nodes(-bound, bound, int(n_points))
    return th, normal_weights(th, mean, sd)


def moment_matrix(theta: np.ndarray, theta_sq: np.ndarray | None = None) -> np.ndarray:
    """Rows ``1``, ``θ`` and ``θ²`` on the nodes, shape (3, Q): ``W @ M.T`` gives each row's total, Σwθ and Σwθ²."""
    theta = np.asarray(theta, dtype=float)
    M = np.stack([np.ones_like(theta), theta, theta * theta if theta_sq is None else theta_sq])
    M.flags.writeable = False
    return M


def eap(log_post: np.ndarray, theta: np.ndarray, theta_sq: np.ndarray | None = None, *,
        out: np.ndarray | None = None, moments: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Normalised posterior weights, EAP θ and posterior SD of a batch of log-posteriors.

    Parameters
    ----------
    log_post : ndarray, shape (S, Q)
        Unnormalised log posterior of each row on the nodes ``theta``. Rows may hold
        ``-inf`` but not only ``-inf``.
    theta : ndarray, shape (Q,)
    theta_sq : ndarray, shape (Q,), optional
        ``theta ** 2`` when the caller has it.
    out : ndarray, shape (S, Q), optional
        Where to write the weights (may be ``log_post`` itself).
    moments : ndarray, shape (3, Q), optional
        :func:`moment_matrix` of ``theta``, for callers that call often (a CAT session).

    Returns
    -------
    W : ndarray, shape (S, Q)
        Posterior weights, each row summing to 1.
    mean : ndarray, shape (S,)
        EAP estimates.
    sd : ndarray, shape (S,)
        Posterior standard deviations (0 where rounding makes the variance negative).

    Notes
    -----
    With :math:`e_{sq} = \exp(\ell_{sq} - \max_r \ell_{sr})`, one product ``e @ [1, θ, θ²]ᵀ``
    gives :math:`z_s = \sum_q e_{sq}`, :math:`\sum_q e_{sq}\theta_q` and
    :math:`\sum_q e_{sq}\theta_q^2`; then :math:`W = e / z`, :math:`\hat\theta = \sum e\theta / z`
    and :math:`\mathrm{SD}^2 = \sum e\theta^2 / z - \hat\theta^2`. A large batch is processed
    in blocks of rows that stay in cache (a block's product with the (Q, 3) matrix is too small
    for BLAS to spread over threads); one row (a CAT session) as a vector, its moments as Python
    numbers — at that size numpy's per-call cost, not arithmetic, is the price.
    """
    M = moment_matrix(theta, theta_sq) if moments is None else moments
    S = log_post.shape[0]
    if S == 1:
        w, m, v = _weights_and_moments(log_post[0], M)
        if out is None:
            W = w[None, :]
        else:
            W = out
            W[0] = w
        return W, np.array([m]), np.array([math.sqrt(v) if v > 0 else 0.0])
    W = np.empty_like(log_post) if out is None else out
    m = np.empty(S)
    v = np.empty(S)
    for s in range(0, S, _ROWS):
        e = min(S, s + _ROWS)
        _, m[s:e], v[s:e] = _weights_and_moments(log_post[s:e], M, out=W[s:e])
    return W, m, np.sqrt(np.where(v > 0, v, 0.0))


def _weights_and_moments(lp: np.ndarray, M: np.ndarray, out: np.ndarray | None = None):
    """Normalised weights of a row (Q,) or a block of rows (R, Q) of log posteriors, their means and variances.

    A row's weights are a new vector and its mean and variance Python numbers; a block's weights
    are computed in place in ``out`` (so that they stay in cache).
    """
    if lp.ndim == 1:
        w = np.exp(lp - lp.max())
        z, s1, s2 = np.dot(M, w).tolist()
        w *= 1.0 / z
        m = s1 / z
        return w, m, s2 / z - m * m
    w = np.subtract(lp, lp.max(axis=1, keepdims=True), out=out)
    np.exp(w, out=w)
    r = w @ M.T
    z = r[:, 0]
    w /= z[:, None]
    m = r[:, 1] / z
    return w, m, r[:, 2] / z - m * m

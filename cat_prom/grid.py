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

__all__ = ["DEFAULT_GRID", "nodes", "normal_log_density", "normal_weights", "quadrature", "eap"]

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


def eap(log_post: np.ndarray, theta: np.ndarray, theta_sq: np.ndarray | None = None, *,
        out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised posterior weights, EAP θ and posterior SD of a batch of log-posteriors.

    Parameters
    ----------
    log_post : ndarray, shape (S, Q)
        Unnormalised log posterior of each row on the nodes ``theta``. Rows may hold
        ``-inf`` but not only ``-inf``.
    theta : ndarray, shape (Q,)
    theta_sq : ndarray, shape (Q,), optional
        ``theta ** 2`` when the caller has it (saves one multiplication per call).
    out : ndarray, shape (S, Q), optional
        Where to write the weights (may be ``log_post`` itself).

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
    Row-blocked with in-place operations so that a large batch stays in cache; the
    two weighted sums use ``einsum``, which is as precise here as BLAS ``gemv`` and
    does not contend for threads. For one row (a CAT session) it is a handful of
    vector operations.
    """
    if theta_sq is None:
        theta_sq = theta * theta
    S = log_post.shape[0]
    W = np.empty_like(log_post) if out is None else out
    m = np.empty(S)
    v = np.empty(S)
    for s in range(0, S, _ROWS):
        e = min(S, s + _ROWS)
        w = W[s:e]
        np.subtract(log_post[s:e], log_post[s:e].max(axis=1, keepdims=True), out=w)
        np.exp(w, out=w)
        w /= w.sum(axis=1, keepdims=True)
        ms = np.einsum("ij,j->i", w, theta)
        m[s:e] = ms
        v[s:e] = np.einsum("ij,j->i", w, theta_sq) - ms * ms
    sd = np.sqrt(np.where(v > 0, v, 0.0))
    return W, m, sd

r"""The slope-intercept form the EM works in, and the input checks shared by the toolkit.

The EM estimates each item in slope-intercept form (D = 1)

.. math::

    \text{GRM:}\quad P^*_k(\theta) = \sigma(a\theta + d_k),\qquad d_k = -a b_k,

    \text{GPCM:}\quad P_k(\theta) \propto \exp(k a\theta + c_k),\qquad
    c_k = -a \sum_{v \le k} b_v,

in which the complete-data log-likelihood of one item is concave (Pratt, 1981).
A row ``eta`` of shape ``(kmax,)`` holds ``(a, d_1..d_{K-1})`` (GRM) or
``(a, c_1..c_{K-1})`` (GPCM), zero-padded.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from .. import grid, irt
from ..errors import CalibrationError, InvalidDataError, InvalidDesignError

A_MIN = 1e-3
A_MAX = 50.0
LOG_FLOOR = -700.0

__all__ = ["A_MIN", "A_MAX", "LOG_FLOOR", "quadrature", "as_params", "ids_of", "prepare_responses", "eta_to_ab",
           "ab_to_eta", "logp_eta", "probs_jac", "log_slope_prior", "feasible"]


def quadrature(n_points: int = 61, bound: float = 6.0, mean: float = 0.0,
               sd: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cat_prom.grid.quadrature`, raising :class:`~cat_prom.errors.CalibrationError` for a bad grid."""
    try:
        return grid.quadrature(n_points, bound, mean, sd)
    except InvalidDesignError as e:
        raise CalibrationError(e.message) from None


def as_params(params) -> irt.ItemParams:
    """Accept ItemParams, an ItemBank, a CalibrationResult or (a, b[, model])."""
    if isinstance(params, irt.ItemParams):
        return params
    if hasattr(params, "params") and isinstance(getattr(params, "params"), irt.ItemParams):
        return params.params
    if isinstance(params, (tuple, list)) and len(params) in (2, 3):
        return irt.item_params(*params)
    raise InvalidDataError("params must be ItemParams, an ItemBank, a CalibrationResult or a tuple (a, b[, model])")


def ids_of(obj, n, ids=None):
    if ids is not None:
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise InvalidDataError(f"ids has {len(ids)} entries for {n} items")
        return ids
    if hasattr(obj, "ids"):
        return [str(i) for i in obj.ids]
    return [f"I{i + 1}" for i in range(n)]


def prepare_responses(responses):
    try:
        R = np.asarray(responses, dtype=float)
    except (TypeError, ValueError):
        raise InvalidDataError("responses must be a numeric array of shape (n_persons, n_items)") from None
    if R.ndim != 2 or R.shape[0] < 1 or R.shape[1] < 1:
        raise InvalidDataError(f"responses must have shape (n_persons, n_items); got {R.shape}")
    miss = np.isnan(R) | (R == -1)
    Rv = np.where(miss, 0.0, R)
    bad = ~miss & (~np.isfinite(Rv) | (Rv < 0) | (Rv != np.round(Rv)))
    if bad.any():
        p, i = np.argwhere(bad)[0]
        raise InvalidDataError(
            f"responses[{p}, {i}] = {R[p, i]!r}: categories must be integers 0..K-1, with NaN or -1 for missing",
            row=int(p), item=int(i))
    X = np.where(miss, -1, Rv).astype(np.int64)
    return X


def eta_to_ab(eta, n_cat, is_gpcm):
    """(a, d) / (a, c) slope-intercept rows -> (a, b) with NaN padding."""
    a = eta[:, 0]
    m = eta.shape[1] - 1
    valid = np.arange(1, m + 1)[None, :] < n_cat[:, None]
    d = eta[:, 1:]
    b_grm = -d / a[:, None]
    c_prev = np.concatenate([np.zeros((eta.shape[0], 1)), d[:, :-1]], axis=1)
    b_gpcm = -(d - c_prev) / a[:, None]
    b = np.where(is_gpcm[:, None], b_gpcm, b_grm)
    return a.copy(), np.where(valid, b, np.nan)


def ab_to_eta(a, b, n_cat, is_gpcm):
    m = b.shape[1]
    valid = np.arange(1, m + 1)[None, :] < n_cat[:, None]
    bz = np.where(valid, b, 0.0)
    d_grm = -a[:, None] * bz
    d_gpcm = -a[:, None] * np.cumsum(bz, axis=1)
    d = np.where(is_gpcm[:, None], d_gpcm, d_grm)
    d = np.where(valid, d, 0.0)
    return np.concatenate([a[:, None], d], axis=1)


def logp_eta(eta, theta, n_cat, is_gpcm):
    """Category log-probabilities, shape (n_theta, n_items, kmax), via the irt kernels."""
    a, b = eta_to_ab(eta, n_cat, is_gpcm)
    p = irt.ItemParams(a=a, b=b, is_gpcm=is_gpcm, n_cat=n_cat)
    return irt.log_probabilities(theta, p)


def probs_jac(eta, theta, n_cat, is_gpcm):
    """Category probabilities and their Jacobian in the slope-intercept parameters.

    Returns
    -------
    logP : (n_items, n_q, K)
    J : (n_items, n_q, K, K)   dP_k / d eta_j, eta = (a, d_1..d_{K-1})
    """
    I, K = eta.shape
    m = K - 1
    logP = np.transpose(logp_eta(eta, theta, n_cat, is_gpcm), (1, 0, 2))  # (I, Q, K)
    P = np.exp(logP)
    th = theta[None, :, None]
    J = np.zeros((I, theta.shape[0], K, K))
    grm = ~is_gpcm
    if grm.any():
        valid = np.arange(1, m + 1)[None, :] < n_cat[:, None]  # (I, m)
        x = eta[:, 0][:, None, None] * th + eta[:, None, 1:]
        s = expit(x)
        W = np.where(valid[:, None, :], s * (1.0 - s), 0.0)  # (I, Q, m)
        z = np.zeros(W.shape[:2] + (1,))
        Wext = np.concatenate([z, W, z], axis=2)
        dA = th * (Wext[..., :-1] - Wext[..., 1:])  # (I, Q, K)
        kk = np.arange(K)[:, None]
        jj = np.arange(m)[None, :]
        E = (kk == jj + 1).astype(float) - (kk == jj).astype(float)  # (K, m)
        dD = W[:, :, None, :] * E[None, None]  # (I, Q, K, m)
        Jg = np.concatenate([dA[..., None], dD], axis=3)
        J = np.where(grm[:, None, None, None], Jg, J)
    if is_gpcm.any():
        k = np.arange(K, dtype=float)[None, None, :]
        Ek = (P * k).sum(axis=2, keepdims=True)
        dA = P * th * (k - Ek)
        eye = np.eye(K)[None, None, :, 1:]  # (1,1,K,m): [j == k] for j = 1..m
        dC = P[..., :, None] * (eye - P[..., None, 1:])
        Jc = np.concatenate([dA[..., None], dC], axis=3)
        J = np.where(is_gpcm[:, None, None, None], Jc, J)
    return logP, J


def log_slope_prior(a, prior):
    """Log-normal slope prior log p(a) (up to a constant), its derivative and Fisher-type curvature."""
    if prior is None:
        z = np.zeros_like(a)
        return z, z, z
    mu, sd = prior
    la = np.log(np.maximum(a, 1e-300))
    lp = -la - 0.5 * ((la - mu) / sd) ** 2
    d1 = -1.0 / a - (la - mu) / (sd ** 2 * a)
    return lp, d1, 1.0 / (sd ** 2 * a ** 2)


def feasible(eta, n_cat, is_gpcm):
    a = eta[:, 0]
    ok = np.isfinite(eta).all(axis=1) & (a > A_MIN) & (a < A_MAX)
    m = eta.shape[1] - 1
    if m > 1:
        valid = np.arange(2, m + 1)[None, :] < n_cat[:, None]  # pairs (k, k+1) both valid
        dec = eta[:, 2:] < eta[:, 1:-1] - 1e-8
        ok &= is_gpcm | np.all(dec | ~valid, axis=1)
    return ok

r"""Item response models: category probabilities, derivatives and Fisher information.

Two polytomous models are supported, with dichotomous 2PL items as the
two-category case of either:

* **GRM** — Samejima's (1969) graded response model. With slope :math:`a` and
  ordered thresholds :math:`b_1 < \dots < b_{K-1}`, the cumulative probabilities
  are :math:`P^*_k(\theta) = \sigma(a(\theta - b_k))` for :math:`k = 1..K-1`,
  :math:`P^*_0 = 1`, :math:`P^*_K = 0`, and the category probabilities are
  :math:`P_k = P^*_k - P^*_{k+1}`.
* **GPCM** — Muraki's (1992) generalized partial credit model,
  :math:`P_k \propto \exp \sum_{v=1}^{k} a(\theta - b_v)` (empty sum for k = 0).

The scaling constant is D = 1 everywhere (multiply ``a`` by 1.702 to convert
from a normal-ogive metric). Categories are 0-based.

Shapes: ``theta`` is ``(n_theta,)``, ``a`` is ``(n_items,)``, ``b`` is
``(n_items, kmax - 1)`` with trailing NaN padding for items with fewer than
``kmax`` categories; results are ``(n_theta, n_items, kmax)`` for categories
(zero probability, ``-inf`` log-probability in padded categories) and
``(n_theta, n_items)`` for information.

All kernels work in log space where it matters, so that probabilities are
finite, in [0, 1] and sum to 1 for :math:`|\theta| \le 10` and extreme
parameters (a up to 10, thresholds in ±10).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidBankError

__all__ = [
    "ItemParams",
    "item_params",
    "log_probabilities",
    "probabilities",
    "derivatives",
    "information",
    "expected_score",
    "MODELS",
]

MODELS = ("grm", "gpcm")
_LOG2 = np.log(2.0)


@dataclass(frozen=True)
class ItemParams:
    """Validated, broadcast-ready item parameters.

    Attributes
    ----------
    a : ndarray, shape (n_items,)
    b : ndarray, shape (n_items, kmax - 1), NaN-padded
    is_gpcm : ndarray of bool, shape (n_items,)
    n_cat : ndarray of int, shape (n_items,)
    """

    a: np.ndarray
    b: np.ndarray
    is_gpcm: np.ndarray
    n_cat: np.ndarray

    @property
    def kmax(self) -> int:
        return self.b.shape[1] + 1

    @property
    def n_items(self) -> int:
        return self.a.shape[0]


def item_params(a, b, model="grm") -> ItemParams:
    """Convert and validate item parameters once.

    Parameters
    ----------
    a : array_like, shape (n_items,)
        Slopes, finite and > 0.
    b : array_like, shape (n_items, kmax - 1) or (n_items,)
        Thresholds; NaN pads the trailing thresholds of items with fewer
        categories. A 1-D array is read as dichotomous items.
    model : str or sequence of str
        ``"grm"`` or ``"gpcm"`` for all items, or one per item.
    """
    if isinstance(a, ItemParams):
        return a
    a = np.atleast_1d(np.asarray(a, dtype=float))
    b = np.asarray(b, dtype=float)
    if b.ndim == 1:
        b = b[:, None]
    if a.ndim != 1 or b.ndim != 2 or b.shape[0] != a.shape[0]:
        raise InvalidBankError(
            f"a must have shape (n_items,) and b (n_items, kmax-1); got {a.shape} and {b.shape}"
        )
    if b.shape[1] < 1:
        raise InvalidBankError("every item needs at least one threshold (two categories)")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        bad = int(np.flatnonzero(~(np.isfinite(a) & (a > 0)))[0])
        raise InvalidBankError(f"item {bad}: slope a must be finite and > 0, got {a[bad]}")
    finite = np.isfinite(b)
    n_thr = finite.sum(axis=1)
    # thresholds must be a contiguous leading block
    if np.any(finite[:, 1:] & ~finite[:, :-1]) or np.any(np.isinf(b)):
        bad = int(np.flatnonzero((finite[:, 1:] & ~finite[:, :-1]).any(axis=1) | np.isinf(b).any(axis=1))[0])
        raise InvalidBankError(
            f"item {bad}: thresholds must be finite, with NaN only as trailing padding; got {b[bad].tolist()}"
        )
    if np.any(n_thr < 1):
        bad = int(np.flatnonzero(n_thr < 1)[0])
        raise InvalidBankError(f"item {bad}: needs at least one threshold")
    if isinstance(model, str):
        models = np.full(a.shape[0], model.lower(), dtype=object)
    else:
        models = np.asarray([str(m).lower() for m in model], dtype=object)
        if models.shape != a.shape:
            raise InvalidBankError(f"model must be a string or one per item; got {models.shape[0]} for {a.shape[0]} items")
    unknown = set(models.tolist()) - set(MODELS)
    if unknown:
        raise InvalidBankError(f"unknown model {sorted(unknown)[0]!r}; use one of {MODELS}")
    return ItemParams(a=a, b=b, is_gpcm=(models == "gpcm"), n_cat=(n_thr + 1).astype(np.intp))


def _logsigmoid(x):
    # log(1 / (1 + exp(-x))), stable for large |x|
    return -np.logaddexp(0.0, -x)


def _logcosh(z):
    z = np.abs(z)
    return z + np.log1p(np.exp(-2.0 * z)) - _LOG2


def _logsinh_pos(h):
    # log(sinh(h)) for h > 0 (h == 0 gives -inf)
    with np.errstate(divide="ignore"):
        return h + np.log(-np.expm1(-2.0 * h)) - _LOG2


def _grm_logp(theta, p: ItemParams):
    T, N, m = theta.shape[0], p.n_items, p.kmax - 1
    x = p.a[None, :, None] * (theta[:, None, None] - p.b[None, :, :])  # (T, N, m), NaN padded
    out = np.full((T, N, m + 1), -np.inf)
    with np.errstate(invalid="ignore"):
        out[..., 0] = -np.logaddexp(0.0, x[..., 0])
        k = np.arange(1, m + 1)
        top = (k[None, :] == (p.n_cat[:, None] - 1))  # (N, m): category k is the item's top one
        mid = (k[None, :] < (p.n_cat[:, None] - 1))
        top_val = _logsigmoid(x)  # category k = top uses x[k-1]
        out[..., 1:] = np.where(top[None], top_val, -np.inf)
        if m > 1:
            xa, xb = x[..., :-1], x[..., 1:]
            # (xa - xb) / 2 = a (b_{k+1} - b_k) / 2, taken from the thresholds directly: forming it from
            # xa - xb cancels (|x| ~ 100 at the extremes) and gave log P = -inf for distinct close thresholds
            h = 0.5 * p.a[None, :, None] * (p.b[None, :, 1:] - p.b[None, :, :-1])
            mid_val = _logsinh_pos(h) - _LOG2 - _logcosh(0.5 * xa) - _logcosh(0.5 * xb)
            mid_val = np.where(mid[None, :, :-1], mid_val, -np.inf)
            out[..., 1:m] = np.where(mid[None, :, :-1], mid_val, out[..., 1:m])
    # the middle-category formula cancels terms of size |a (theta - b)| (up to ~100 here), which can
    # leave log P a few ulps above 0, i.e. P = 1 + 7e-15; a log-probability is never positive
    return np.minimum(out, 0.0)


def _gpcm_logp(theta, p: ItemParams):
    m = p.kmax - 1
    steps = p.a[None, :, None] * (theta[:, None, None] - p.b[None, :, :])  # (T, N, m)
    z = np.concatenate([np.zeros(steps.shape[:2] + (1,)), np.cumsum(np.nan_to_num(steps), axis=2)], axis=2)
    valid = np.arange(m + 1)[None, :] < p.n_cat[:, None]  # (N, kmax)
    z = np.where(valid[None], z, -np.inf)
    zmax = z.max(axis=2, keepdims=True)
    lse = zmax + np.log(np.exp(z - zmax).sum(axis=2, keepdims=True))
    return z - lse


def _logp(theta, p: ItemParams):
    if not p.is_gpcm.any():
        return _grm_logp(theta, p)
    if p.is_gpcm.all():
        return _gpcm_logp(theta, p)
    return np.where(p.is_gpcm[None, :, None], _gpcm_logp(theta, p), _grm_logp(theta, p))


def _theta(theta):
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    if theta.ndim != 1:
        raise ValueError(f"theta must be a scalar or 1-D array, got shape {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta must be finite")
    return theta


def log_probabilities(theta, a, b=None, model="grm"):
    """Category log-probabilities.

    Parameters
    ----------
    theta : array_like, shape (n_theta,)
    a, b, model : see :func:`item_params` (or pass an :class:`ItemParams` as ``a``)

    Returns
    -------
    ndarray, shape (n_theta, n_items, kmax)
        ``log P(X_i = k | theta)``; ``-inf`` in padded categories.
    """
    p = item_params(a, b, model)
    return _logp(_theta(theta), p)


def probabilities(theta, a, b=None, model="grm"):
    """Category probabilities, shape ``(n_theta, n_items, kmax)``; 0 in padded categories."""
    return np.exp(log_probabilities(theta, a, b, model))


def _grm_derivs(theta, p: ItemParams, P):
    # W_k = P*_k (1 - P*_k) for k = 1..K-1, 0 at k = 0 and k = K
    x = p.a[None, :, None] * (theta[:, None, None] - p.b[None, :, :])
    with np.errstate(invalid="ignore", over="ignore"):
        # W = sigma(x) sigma(-x), formed in log space: s * (1 - s) loses all relative
        # precision once s rounds to 1 (x >~ 30), which zeroed the information there.
        W = np.exp(_logsigmoid(x) + _logsigmoid(-x))
        W1 = -W * np.tanh(0.5 * x)  # 1 - 2 sigma(x) = -tanh(x / 2)
    W = np.nan_to_num(W)
    W1 = np.nan_to_num(W1)
    T, N, m = x.shape
    z = np.zeros((T, N, 1))
    Wext = np.concatenate([z, W, z], axis=2)
    W1ext = np.concatenate([z, W1, z], axis=2)
    a = p.a[None, :, None]
    dP = a * (Wext[..., :-1] - Wext[..., 1:])
    d2P = a * a * (W1ext[..., :-1] - W1ext[..., 1:])
    valid = np.arange(m + 1)[None, :] < p.n_cat[:, None]
    # padded thresholds have W = 0, so the top category's W_{k+1} is 0 already
    dP = np.where(valid[None], dP, 0.0)
    d2P = np.where(valid[None], d2P, 0.0)
    return dP, d2P


def _gpcm_derivs(theta, p: ItemParams, P):
    k = np.arange(p.kmax, dtype=float)[None, None, :]
    E = (P * k).sum(axis=2, keepdims=True)
    V = (P * (k - E) ** 2).sum(axis=2, keepdims=True)
    a = p.a[None, :, None]
    dP = a * P * (k - E)
    d2P = a * a * P * ((k - E) ** 2 - V)
    return dP, d2P


def derivatives(theta, a, b=None, model="grm"):
    """Category probabilities and their first and second derivatives in theta.

    Returns
    -------
    P, dP, d2P : ndarray, each shape (n_theta, n_items, kmax)
    """
    p = item_params(a, b, model)
    theta = _theta(theta)
    logP = _logp(theta, p)
    P = np.exp(logP)
    if not p.is_gpcm.any():
        dP, d2P = _grm_derivs(theta, p, P)
    elif p.is_gpcm.all():
        dP, d2P = _gpcm_derivs(theta, p, P)
    else:
        g1, g2 = _grm_derivs(theta, p, P)
        c1, c2 = _gpcm_derivs(theta, p, P)
        sel = p.is_gpcm[None, :, None]
        dP, d2P = np.where(sel, c1, g1), np.where(sel, c2, g2)
    return P, dP, d2P


def _information_from(P, dP, logP=None):
    # I = sum_k dP_k^2 / P_k; terms with underflowing P_k vanish (dP_k ~ a P_k there)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(P > 1e-300, dP * dP / np.where(P > 1e-300, P, 1.0), 0.0)
    return term.sum(axis=2)


def information(theta, a, b=None, model="grm"):
    r"""Fisher item information :math:`I_i(\theta) = \sum_k P'_{ik}(\theta)^2 / P_{ik}(\theta)`.

    For the GPCM this equals :math:`a^2 \operatorname{Var}(X \mid \theta)` (Muraki, 1993);
    for the GRM, :math:`a^2 \sum_k (W_k - W_{k+1})^2 / P_k` with
    :math:`W_k = P^*_k (1 - P^*_k)` (Samejima, 1969).

    Returns
    -------
    ndarray, shape (n_theta, n_items), non-negative and finite.
    """
    p = item_params(a, b, model)
    theta = _theta(theta)
    P, dP, _ = derivatives(theta, p)
    info = _information_from(P, dP)
    if p.is_gpcm.any():
        k = np.arange(p.kmax, dtype=float)[None, None, :]
        E = (P * k).sum(axis=2, keepdims=True)
        V = (P * (k - E) ** 2).sum(axis=2)
        info = np.where(p.is_gpcm[None, :], (p.a ** 2)[None, :] * V, info)
    return np.maximum(info, 0.0)


def expected_score(theta, a, b=None, model="grm"):
    """Expected category score :math:`E[X_i | \\theta]`, shape (n_theta, n_items)."""
    P = probabilities(theta, a, b, model)
    return (P * np.arange(P.shape[2])[None, None, :]).sum(axis=2)

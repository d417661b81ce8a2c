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

from .errors import InvalidBankError, InvalidDataError

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
_BLOCK = 1 << 16  # elements per (kmax, θ, item) block in information()


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
    try:
        a = np.atleast_1d(np.asarray(a, dtype=float))
        b = np.asarray(b, dtype=float)
    except (TypeError, ValueError):
        raise InvalidBankError("item parameters must be numbers: slopes a (n_items,) and thresholds b "
                               "(n_items, kmax-1), NaN-padded") from None
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
    try:
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
    except (TypeError, ValueError):
        raise InvalidDataError(f"theta must be a number or a 1-D array of numbers, got {theta!r:.80}",
                               field="theta") from None
    if theta.ndim != 1:
        raise InvalidDataError(f"theta must be a scalar or 1-D array, got shape {theta.shape}", field="theta")
    if not np.all(np.isfinite(theta)):
        raise InvalidDataError("theta must be finite; got NaN or infinity", field="theta")
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


# ------------------------------------------------------------------------------------------------
# Category terms in closed form: P_k and the θ-derivatives of log P_k
# ------------------------------------------------------------------------------------------------
# Every derivative the engine needs is a sum over categories of P_k times a polynomial in
#   d1_k = d log P_k / dθ,  d2_k = d² log P_k / dθ², ..., d4_k = d⁴ log P_k / dθ⁴,
# e.g. dP_k = P_k d1_k, information I = sum_k P_k d1_k². These have closed forms free of
# divisions by small probabilities (Samejima 1969 for the GRM, Muraki 1992 for the GPCM):
#
# GRM, with P*_j = σ(x_j), Q*_j = 1 - P*_j, W_j = P*_j Q*_j, x_j = a (θ - b_j) and the
# conventions P*_0 = 1, Q*_0 = 0, P*_K = 0, Q*_K = 1, W_0 = W_K = 0:
#   d1_k = a (Q*_k - P*_{k+1})
#   d2_k = -a² (W_k + W_{k+1})
#   d3_k = a³ (W_k t_k + W_{k+1} t_{k+1}),  t_j = P*_j - Q*_j  (as dW_j/dθ = -a W_j t_j, dt_j/dθ = 2 a W_j)
#   d4_k = a⁴ (W_k (2 W_k - t_k²) + W_{k+1} (2 W_{k+1} - t_{k+1}²))
#   P_k  = Q*_1 (k = 0), P*_{K-1} (top), and for middle categories
#          sinh(a (b_{k+1} - b_k) / 2) sech(x_k / 2) sech(x_{k+1} / 2) / 2, which never cancels.
# GPCM (an exponential family in aθ with statistic k; E, μ2, μ3, μ4 the mean and central moments of X):
#   d1_k = a (k - E),  d2_k = -a² μ2,  d3_k = -a³ μ3,  d4_k = -a⁴ (μ4 - 3 μ2²)  (the cumulants of X).
# P*_j and Q*_j are each formed as 1 / (1 + e^{∓x}), so each keeps full relative precision in either
# tail, and nothing overflows for any finite x.


def _grm_constants(p: ItemParams):
    """Per-item GRM constants.

    Returns thresholds ``bt`` (m, N) with +inf padding, ``sh2`` = 2 sinh(a (b_{j+1} - b_j) / 2)
    (m - 1, N) (0 where padded, inf on overflow), ``top`` (m - 1, N), 1.0 where category j + 1 is the
    item's top category below kmax - 1, else 0.0 (None when no item has fewer than kmax categories)
    and whether every sinh is finite.
    """
    bt = np.where(np.isfinite(p.b), p.b, np.inf).T.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        sh2 = 2.0 * np.sinh(0.5 * p.a[:, None] * (p.b[:, 1:] - p.b[:, :-1])).T  # NaN where padded
    sh2 = np.ascontiguousarray(np.where(np.isnan(sh2), 0.0, sh2))
    top = None
    if np.any(p.n_cat < p.kmax):
        top = (np.arange(1, p.kmax - 1)[:, None] == (p.n_cat - 1)[None, :]).astype(float)
    return bt, sh2, top, bool(np.all(np.isfinite(sh2)))


def _grm_terms(theta, a, bt, sh2, top, finite, order):
    """GRM terms; ``theta``, ``a`` and ``bt[j]``, ``sh2[j]``, ``top[j]`` (see :func:`_grm_constants`)
    broadcast to a shape S; ``finite``: every ``sh2`` is finite.

    Returns ``order + 1`` arrays of shape (K, *S): P, d1[, d2[, d3]]. Arithmetic only (no
    ``np.where``, which is several times slower than an ufunc on large arrays).
    """
    m = bt.shape[0]
    x = a * (theta - bt)  # (m, *S); -inf at padded thresholds
    S = x.shape[1:]
    with np.errstate(over="ignore"):
        ps = np.exp(-x)
        ps += 1.0
        np.reciprocal(ps, out=ps)  # P*_j = σ(x_j), relative accuracy in both tails
        qs = np.exp(x)
        qs += 1.0
        np.reciprocal(qs, out=qs)  # Q*_j = σ(-x_j), never 1 - P*_j
    W = ps * qs
    K = m + 1
    P = np.empty((K,) + S)
    P[0] = qs[0]
    P[m] = ps[m - 1]
    if m > 1:
        sw = np.sqrt(W)  # sech(x_j / 2) / 2
        mid = P[1:m]
        np.multiply(sw[:-1], sw[1:], out=mid)
        with np.errstate(invalid="ignore"):
            mid *= sh2
        if not finite:  # sinh overflowed (a (b_{k+1} - b_k) > 1420): x_k, x_{k+1} differ in sign
            mid[...] = np.where(np.isfinite(sh2), mid, ps[:-1] - ps[1:])
        if top is not None:  # the middle formula is 0 when the next threshold is padding
            mid += top * ps[:-1]
    d1 = np.empty((K,) + S)
    np.negative(ps[0], out=d1[0])
    np.subtract(qs[:-1], ps[1:], out=d1[1:m])
    d1[m] = qs[m - 1]
    d1 *= a
    out = [P, d1]
    if order >= 2:
        d2 = np.empty((K,) + S)
        d2[0] = W[0]
        np.add(W[:-1], W[1:], out=d2[1:m])
        d2[m] = W[m - 1]
        d2 *= -(a * a)
        out.append(d2)
        if order >= 3:
            t = ps - qs
            tW = W * t
            d3 = np.empty((K,) + S)
            d3[0] = tW[0]
            np.add(tW[:-1], tW[1:], out=d3[1:m])
            d3[m] = tW[m - 1]
            d3 *= a * a * a
            out.append(d3)
            if order >= 4:
                V = W * (2.0 * W - t * t)
                d4 = np.empty((K,) + S)
                d4[0] = V[0]
                np.add(V[:-1], V[1:], out=d4[1:m])
                d4[m] = V[m - 1]
                d4 *= (a * a) * (a * a)
                out.append(d4)
    return out


def _gpcm_terms(theta, a, bt, ncat, order):
    """GPCM terms; arguments as :func:`_grm_terms` (``bt`` holds the step parameters, any finite padding)."""
    m = bt.shape[0]
    K = m + 1
    steps = a * (theta - bt)  # (m, *S)
    S = steps.shape[1:]
    z = np.empty((K,) + S)
    z[0] = 0.0
    np.cumsum(steps, axis=0, out=z[1:])
    k = np.arange(K, dtype=float).reshape((K,) + (1,) * len(S))
    z = np.where(k < ncat, z, -np.inf)
    z -= z.max(axis=0)
    P = np.exp(z)
    P /= P.sum(axis=0)
    dev = k - (k * P).sum(axis=0)
    out = [P, a * dev]
    if order >= 2:
        Pdev2 = P * dev * dev
        mu2 = Pdev2.sum(axis=0)
        out.append(np.broadcast_to(-(a * a) * mu2, (K,) + S))
        if order >= 3:
            out.append(np.broadcast_to(-(a * a * a) * (Pdev2 * dev).sum(axis=0), (K,) + S))
            if order >= 4:
                kappa4 = (Pdev2 * dev * dev).sum(axis=0) - 3.0 * mu2 * mu2
                out.append(np.broadcast_to(-((a * a) * (a * a)) * kappa4, (K,) + S))
    return out


def _terms(theta, p: ItemParams, order=1, items=None):
    """P_k and the first ``order`` (1..4) θ-derivatives of log P_k, for every category.

    Parameters
    ----------
    theta : ndarray, shape (T,) without ``items``, else (M,)
    p : ItemParams
    order : int
        1 gives (P, d1), 2 adds d2, 3 adds d3, 4 adds d4 (see the comment above for the formulas).
    items : ndarray of int, shape (M,), optional
        Evaluate item ``items[m]`` at ``theta[m]`` only (pairs), instead of every item at every θ.

    Returns
    -------
    list of ndarray, each (kmax, T, n_items) or (kmax, M)
        Category-major, so that sums over categories run in a fixed order whatever the batch.
        Padded categories have P = 0.
    """
    if items is None:
        idx = np.arange(p.n_items)[None, :]
        th = theta[:, None]
    else:
        idx = items
        th = theta
    S = np.broadcast_shapes(th.shape, idx.shape)
    K = p.kmax
    gp = p.is_gpcm
    out = [np.empty((K,) + S) for _ in range(order + 1)]
    for is_gpcm in (False, True):
        sel = gp == is_gpcm
        whole = bool(sel.all())
        if not whole and not sel.any():
            continue
        if whole:
            jdx, tj = idx, th
        elif items is None:
            cols = np.flatnonzero(sel)
            jdx, tj = idx[:, cols], th
        else:
            rows = sel[idx]
            jdx, tj = idx[rows], th[rows]
        a = p.a[jdx]
        if is_gpcm:
            res = _gpcm_terms(tj, a, np.nan_to_num(p.b).T[:, jdx], p.n_cat[jdx], order)
        else:
            bt, sh2, top, finite = _grm_constants(p)
            res = _grm_terms(tj, a, bt[:, jdx], sh2[:, jdx], None if top is None else top[:, jdx], finite, order)
        if whole:
            return res
        for o, r in zip(out, res):
            if items is None:
                o[..., cols] = r
            else:
                o[:, rows] = r
    return out


def derivatives(theta, a, b=None, model="grm"):
    """Category probabilities and their first and second derivatives in θ.

    :math:`P'_k = P_k\\,d_{1k}` and :math:`P''_k = P_k (d_{2k} + d_{1k}^2)` with the closed-form
    derivatives of :math:`\\log P_k` given in this module's source (Samejima 1969; Muraki 1992).

    Returns
    -------
    P, dP, d2P : ndarray, each shape (n_theta, n_items, kmax)
    """
    p = item_params(a, b, model)
    P, d1, d2 = _terms(_theta(theta), p, 2)
    dP = P * d1
    d2P = P * (d2 + d1 * d1)
    return tuple(np.ascontiguousarray(np.moveaxis(v, 0, -1)) for v in (P, dP, d2P))


def information(theta, a, b=None, model="grm"):
    r"""Fisher item information :math:`I_i(\theta) = \sum_k P'_{ik}(\theta)^2 / P_{ik}(\theta)`.

    Computed as :math:`\sum_k P_{ik}\,(\partial_\theta \log P_{ik})^2` with closed-form log-derivatives,
    which equals :math:`a^2 \operatorname{Var}(X \mid \theta)` for the GPCM (Muraki, 1993) and
    :math:`a^2 \sum_k (W_k - W_{k+1})^2 / P_k` with :math:`W_k = P^*_k (1 - P^*_k)` for the GRM
    (Samejima, 1969), without dividing by small probabilities.

    Returns
    -------
    ndarray, shape (n_theta, n_items), non-negative and finite.
    """
    p = item_params(a, b, model)
    theta = _theta(theta)
    out = np.empty((theta.shape[0], p.n_items))
    step = max(1, _BLOCK // (p.n_items * p.kmax))  # θ rows per block: the temporaries stay in cache
    for s in range(0, theta.shape[0], step):
        P, d1 = _terms(theta[s:s + step], p, 1)
        P *= d1
        P *= d1
        P.sum(axis=0, out=out[s:s + step])  # category by category, the same sums whatever the block
    return out


def expected_score(theta, a, b=None, model="grm"):
    """Expected category score :math:`E[X_i | \\theta]`, shape (n_theta, n_items)."""
    P = probabilities(theta, a, b, model)
    return (P * np.arange(P.shape[2])[None, None, :]).sum(axis=2)

"""Everything the EM needs prepared from the data: anchors, category checks, patterns, starting values."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import irt
from ..errors import CalibrationError, CatPromError, InvalidDataError
from .model import ab_to_eta, feasible
from .results import CategoryCollapse, SparseCategory


def fixed_spec(fixed, ids, n_items):
    """Normalise ``fixed`` into {column index: (a, thresholds, model)}."""
    if fixed is None:
        return {}
    out = {}
    col = {iid: j for j, iid in enumerate(ids)}
    if hasattr(fixed, "items") and hasattr(fixed, "ids") and hasattr(fixed, "index"):  # ItemBank
        for it in fixed.items:
            if it.id in col:
                out[col[it.id]] = (float(it.a), tuple(it.thresholds), it.model)
        if not out:
            raise CalibrationError("fixed: no item of the given bank matches a response column id; pass ids=")
        return out
    if not isinstance(fixed, Mapping):
        raise CalibrationError("fixed must be an ItemBank or a mapping {item id or column: (a, thresholds[, model])}")
    for key, spec in fixed.items():
        j = key if isinstance(key, (int, np.integer)) else col.get(str(key))
        if j is None or not 0 <= int(j) < n_items:
            raise CalibrationError(f"fixed: item {key!r} is not a response column; columns are {list(ids)[:5]}...")
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise CalibrationError(f"fixed[{key!r}] must be (a, thresholds) or (a, thresholds, model)")
        a, thr = float(spec[0]), tuple(float(t) for t in np.atleast_1d(spec[1]))
        model = str(spec[2]) if len(spec) == 3 else None
        out[int(j)] = (a, thr, model)
    return out


def check_models(model, fixed_spec, I) -> list[str]:
    """One lower-case model name per item (anchors keep theirs)."""
    if isinstance(model, str):
        models = [model.lower()] * I
    else:
        models = [str(m).lower() for m in model]
        if len(models) != I:
            raise CalibrationError(f"model: got {len(models)} models for {I} items")
    for m in set(models):
        if m not in irt.MODELS:
            raise CalibrationError(f"unknown model {m!r}; use one of {irt.MODELS}")
    for j, (_, _, fm) in fixed_spec.items():
        if fm is not None:
            models[j] = fm.lower()
    return models


def check_weights(weights, N) -> np.ndarray:
    if weights is None:
        return np.ones(N)
    w = np.asarray(weights, dtype=float)
    if w.shape != (N,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidDataError(f"weights must be finite, >= 0 and of shape ({N},)")
    return w


def category_counts(X, ids, n_categories, fixed_spec) -> np.ndarray:
    """Categories per item, shape (n_items,); raises for items nobody answered or out-of-range categories."""
    ans = X >= 0
    n_resp = ans.sum(axis=0)
    if np.any(n_resp == 0):
        none = [ids[j] for j in np.flatnonzero(n_resp == 0)]
        raise CalibrationError(
            f"no responses to item(s) {', '.join(map(repr, none))}; drop these columns before calibrating "
            f"(an item nobody answered carries no information about its parameters)", item_ids=none)
    xmax = np.where(ans, X, -1).max(axis=0)
    if n_categories is None:
        n_cat = np.maximum(xmax + 1, 2)
    else:
        n_cat = np.broadcast_to(np.asarray(n_categories, dtype=np.int64), (X.shape[1],)).copy()
        if np.any(n_cat < 2):
            raise CalibrationError("n_categories must be >= 2 for every item")
    for j, (_, thr, _) in fixed_spec.items():
        n_cat[j] = len(thr) + 1
    over = xmax >= n_cat
    if over.any():
        j = int(np.flatnonzero(over)[0])
        raise InvalidDataError(f"item {ids[j]!r} takes categories 0-{n_cat[j] - 1}, got {xmax[j]}", item_id=ids[j])
    return n_cat


def sparse_categories(X, w, ids, n_cat, is_fixed, min_count, collapse_sparse) -> tuple[list, list]:
    """Categories with fewer than ``min_count`` answers; with ``collapse_sparse``, merge them.

    ``X`` and ``n_cat`` are recoded in place for collapsed items. Returns (sparse, collapsed).
    """
    ans = X >= 0
    sparse_found, collapsed = [], []
    for j in range(X.shape[1]):
        if is_fixed[j]:
            continue
        k_j = int(n_cat[j])
        counts = np.bincount(X[ans[:, j], j], weights=w[ans[:, j]], minlength=k_j)[:k_j]
        if np.count_nonzero(counts) < 2:
            raise CalibrationError(
                f"item {ids[j]!r}: every response is in category {int(np.argmax(counts))}; a constant item cannot "
                f"be calibrated - drop it", item_id=ids[j])
        low = np.flatnonzero(counts < min_count)
        sparse_found += [SparseCategory(ids[j], int(k), float(counts[k])) for k in low]
        if collapse_sparse and low.size:
            mapping, new_counts = collapse_map(counts, min_count)
            collapsed.append(CategoryCollapse(ids[j], tuple(int(v) for v in mapping),
                                              tuple(float(c) for c in counts), tuple(float(c) for c in new_counts)))
            col = X[:, j]
            X[:, j] = np.where(col >= 0, mapping[np.maximum(col, 0)], -1)
            n_cat[j] = len(new_counts)
        elif np.any(counts == 0):
            zero = np.flatnonzero(counts == 0).tolist()
            raise CalibrationError(
                f"item {ids[j]!r}: no responses in categor{'y' if len(zero) == 1 else 'ies'} {zero}; its threshold(s) "
                f"cannot be estimated - pass collapse_sparse=True to merge sparse categories, or n_categories",
                item_id=ids[j], categories=zero)
    return sparse_found, collapsed


def collapse_map(counts, min_count):
    """Merge sparse categories into the adjacent category with fewer observations."""
    groups = [[k] for k in range(counts.size)]
    c = [float(x) for x in counts]
    while len(c) > 2 and min(c) < min_count:
        k = int(np.argmin(c))
        if k == 0:
            nb = 1
        elif k == len(c) - 1:
            nb = k - 1
        else:
            nb = k - 1 if c[k - 1] <= c[k + 1] else k + 1
        lo, hi = min(k, nb), max(k, nb)
        groups[lo] = groups[lo] + groups[hi]
        c[lo] += c[hi]
        del groups[hi], c[hi]
    mapping = np.empty(counts.size, dtype=np.int64)
    for g, members in enumerate(groups):
        mapping[members] = g
    return mapping, np.array(c)


class Indicator:
    """One-hot response indicator X (n_patterns, n_items * kmax), dense or sparse.

    Dense BLAS products win for large, mostly complete data; scipy.sparse wins
    for small or very sparse data (and avoids BLAS threading overhead there).
    """

    def __init__(self, rows, cols, shape):
        n = rows.size
        size = shape[0] * shape[1]
        density = n / max(1, size)
        if density > 0.08 and 2_000_000 <= size <= 60_000_000:
            X = np.zeros(shape)
            X[rows, cols] = 1.0
            self.X, self.XT, self.dense = X, np.ascontiguousarray(X.T), True
        else:
            from scipy import sparse  # imported only when needed: it is slow to import

            X = sparse.csr_matrix((np.ones(n), (rows, cols)), shape=shape)
            self.X, self.XT, self.dense = X, X.T.tocsr(), False

    def dot(self, M):
        """X @ M, shape (n_patterns, M.shape[1])."""
        return self.X @ M

    def tdot(self, M):
        """X.T @ M, shape (n_items * kmax, M.shape[1])."""
        return self.XT @ M


def patterns(X, w, K):
    """Distinct response patterns of the persons who answered something.

    Returns
    -------
    pat : ndarray of int, shape (U, n_items)
        The patterns (-1 = not answered).
    wp : ndarray, shape (U,)
        Total weight of each pattern.
    ind : Indicator
        One-hot ``(U, n_items * K)`` indicator of the patterns.
    n_persons : int
        Persons with at least one answer and positive weight.
    """
    I = X.shape[1]
    keep = (X >= 0).any(axis=1) & (w > 0)
    Xk, wk = X[keep], w[keep]
    if Xk.shape[0] == 0:
        raise CalibrationError("no person answered any item")
    pat, inv = np.unique(Xk, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    wp = np.bincount(inv, weights=wk, minlength=pat.shape[0])
    pr, pc = np.nonzero(pat >= 0)
    ind = Indicator(pr, pc * K + pat[pr, pc], (pat.shape[0], I * K))
    return pat, wp, ind, int(keep.sum())


def moment_start(X, w, n_cat, is_gpcm, K):
    """Crude but robust starting values from marginal proportions and item-rest correlations."""
    I = X.shape[1]
    ans = X >= 0
    top = np.maximum(n_cat - 1, 1)
    y = np.where(ans, X / top[None, :], np.nan)
    cnt = ans.sum(axis=1)
    tot = np.where(ans, y, 0.0).sum(axis=1)
    eta = np.zeros((I, K))
    # item-rest correlation, vectorised over items
    rest = (tot[:, None] - np.where(ans, y, 0.0)) / np.maximum(cnt[:, None] - 1, 1)
    ok = ans & (cnt[:, None] > 1)
    ww = w[:, None] * ok
    sw = np.maximum(ww.sum(axis=0), 1e-12)
    yv = np.where(ok, y, 0.0)
    rv = np.where(ok, rest, 0.0)
    my, mr = (ww * yv).sum(0) / sw, (ww * rv).sum(0) / sw
    cov = (ww * (yv - my) * (rv - mr)).sum(0) / sw
    vy = (ww * (yv - my) ** 2).sum(0) / sw
    vr = (ww * (rv - mr) ** 2).sum(0) / sw
    r = cov / np.sqrt(np.maximum(vy * vr, 1e-12))
    r = np.clip(np.nan_to_num(r, nan=0.5), 0.1, 0.9)
    for_a = np.clip(1.7 * r / np.sqrt(1.0 - r ** 2), 0.4, 3.0)
    eta[:, 0] = for_a
    scale = np.sqrt(1.0 + 0.346 * for_a ** 2)
    for i in range(I):  # small per-item loop over categories only (K counts), not persons
        k_i = int(n_cat[i])
        counts = np.bincount(X[ans[:, i], i], weights=w[ans[:, i]], minlength=k_i)[:k_i] + 0.5
        p = counts / counts.sum()
        if is_gpcm[i]:
            eta[i, 1:k_i] = np.log(p[1:] / p[0]) * scale[i] / max(1.0, 0.5 * (k_i - 1))
        else:
            ge = np.clip(1.0 - np.cumsum(p)[:-1], 1e-4, 1 - 1e-4)  # P(X >= k), k = 1..K-1
            d = np.log(ge / (1 - ge)) * scale[i]
            for j in range(1, d.size):
                d[j] = min(d[j], d[j - 1] - 0.05)
            eta[i, 1:k_i] = d
    return eta


def starting_values(start, X, w, n_cat, is_gpcm, K, fixed_spec, models, ids) -> np.ndarray:
    """Starting slope-intercept rows, shape (n_items, K); anchors at their given parameters."""
    I = X.shape[1]
    if isinstance(start, (tuple, list)):
        a0, b0 = np.asarray(start[0], float), np.asarray(start[1], float)
        if b0.ndim == 1:
            b0 = b0[:, None]
        if a0.shape != (I,) or b0.shape[0] != I:
            raise CalibrationError("start=(a, b) must have shapes (n_items,) and (n_items, kmax-1)")
        bb = np.full((I, K - 1), np.nan)
        bb[:, : min(K - 1, b0.shape[1])] = b0[:, : K - 1]
        eta = ab_to_eta(a0, bb, n_cat, is_gpcm)
    elif isinstance(start, str) and start == "girth":
        if is_gpcm.any():
            raise CalibrationError("start='girth' supports GRM items only")
        from .girth_ref import girth_grm
        ga, gb = girth_grm(np.where(X >= 0, X, np.nan), max_iteration=25)
        bb = np.full((I, K - 1), np.nan)
        bb[:, : gb.shape[1]] = gb[:, : K - 1]
        eta = ab_to_eta(np.clip(ga, 0.2, 5), bb, n_cat, is_gpcm)
        bad = ~feasible(eta, n_cat, is_gpcm)
        if bad.any():
            eta[bad] = moment_start(X, w, n_cat, is_gpcm, K)[bad]
    elif isinstance(start, str) and start in ("auto", "simple"):
        eta = moment_start(X, w, n_cat, is_gpcm, K)
    else:
        raise CalibrationError(f"start must be 'auto', 'simple', 'girth' or (a, b); got {start!r}")
    for j, (a_f, thr, _) in fixed_spec.items():
        bb = np.full((1, K - 1), np.nan)
        bb[0, : len(thr)] = thr
        eta[j] = ab_to_eta(np.array([a_f]), bb, n_cat[j:j + 1], is_gpcm[j:j + 1])[0]
        try:
            irt.item_params([a_f], bb, models[j])
        except CatPromError as e:
            raise CalibrationError(f"fixed item {ids[j]!r}: {e}", item_id=ids[j]) from None
    return eta


def check_slope_prior(slope_prior):
    if slope_prior is None:
        return None
    try:
        slope_prior = (float(slope_prior[0]), float(slope_prior[1]))
    except (TypeError, ValueError, IndexError):
        raise CalibrationError("slope_prior must be (mu, sigma) of log(a)") from None
    if not (np.isfinite(slope_prior[0]) and np.isfinite(slope_prior[1]) and slope_prior[1] > 0):
        raise CalibrationError(f"slope_prior must be finite with sigma > 0; got {slope_prior}")
    return slope_prior

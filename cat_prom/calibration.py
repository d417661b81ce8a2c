r"""Item calibration: the researcher's toolkit.

Marginal maximum likelihood (MML) estimation of graded-response (GRM) and
generalized-partial-credit (GPCM) item parameters by the EM algorithm of
Bock and Aitkin (1981), item fit (S-X², Orlando and Thissen 2000), marginal
reliability, scale linking (mean-sigma, Stocking-Lord) and fixed-anchor
calibration, plus a response simulator.

Model and metric
----------------
Everything uses the conventions of :mod:`cat_prom.irt`: slope :math:`a`,
thresholds :math:`b_1 < \dots < b_{K-1}` (GRM) or step parameters (GPCM),
scaling constant D = 1, categories 0-based. Internally the EM works in the
slope-intercept form

.. math::

    \text{GRM:}\quad P^*_k(\theta) = \sigma(a\theta + d_k),\qquad d_k = -a b_k,

    \text{GPCM:}\quad P_k(\theta) \propto \exp(k a\theta + c_k),\qquad
    c_k = -a \sum_{v \le k} b_v,

in which the complete-data log-likelihood of one item is concave (Pratt,
1981), so Fisher scoring with step halving is monotone.

Missing data
------------
Missing responses (NaN or -1) simply leave the item out of that person's
likelihood (full-information MML). This is the correct likelihood whenever
the missingness depends only on observed answers (missing at random), which
is exactly how a CAT decides what to ask next (Mislevy and Wu, 1996). It is
*not* what ``girth`` does: its GRM estimator solves for thresholds from the
observed marginal proportions of each item, which are biased when who-answers
depends on ability; see :func:`girth_grm` and ``benchmarks/calibration.py``.

Only this module imports ``girth``; girth wants ``(n_items, n_persons)``
arrays with missing coded as ``girth.INVALID_RESPONSE`` and the transposition
happens at that boundary.

References
----------
Bock, R. D., & Aitkin, M. (1981). Marginal maximum likelihood estimation of
item parameters: application of an EM algorithm. *Psychometrika*, 46, 443-459.

Samejima, F. (1969). Estimation of latent ability using a response pattern of
graded scores. *Psychometrika Monograph Supplement*, 17.

Muraki, E. (1992). A generalized partial credit model: application of an EM
algorithm. *Applied Psychological Measurement*, 16, 159-176.

Orlando, M., & Thissen, D. (2000). Likelihood-based item-fit indices for
dichotomous item response theory models. *Applied Psychological Measurement*,
24, 50-64. Kang, T., & Chen, T. T. (2008). Performance of the generalized
S-X² item fit index for polytomous IRT models. *Journal of Educational
Measurement*, 45, 391-406.

Lord, F. M., & Wingersky, M. S. (1984). Comparison of IRT true-score and
equipercentile observed-score "equatings". *Applied Psychological
Measurement*, 8, 453-461.

Marco, G. L. (1977). Item characteristic curve solutions to three intractable
testing problems. *Journal of Educational Measurement*, 14, 139-160.
Stocking, M. L., & Lord, F. M. (1983). Developing a common metric in item
response theory. *Applied Psychological Measurement*, 7, 201-210.

Kim, S. (2006). A comparative study of IRT fixed parameter calibration
methods. *Journal of Educational Measurement*, 43, 355-381.

Green, B. F., Bock, R. D., Humphreys, L. G., Linn, R. L., & Reckase, M. D.
(1984). Technical guidelines for assessing computerized adaptive tests.
*Journal of Educational Measurement*, 21, 347-360.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, sparse, stats
from scipy.special import expit

from . import irt
from .errors import CalibrationError, CatPromError, InvalidDataError

__all__ = [
    "CalibrationResult",
    "ItemIssue",
    "SparseCategory",
    "CategoryCollapse",
    "LinkingResult",
    "ItemFitResult",
    "quadrature",
    "calibrate",
    "simulate_responses",
    "test_information",
    "marginal_reliability",
    "item_fit_sx2",
    "link_mean_sigma",
    "link_stocking_lord",
    "transform_params",
    "girth_grm",
]

ProgressCallback = Callable[[int, float, float], Any]

_A_MIN = 1e-3
_A_MAX = 50.0
_LOG_FLOOR = -700.0


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ItemIssue:
    """A per-item problem found during calibration.

    ``kind`` is one of ``"not_converged"``, ``"slope_at_bound"``,
    ``"slope_near_zero"``, ``"extreme_threshold"``.
    """

    item_id: str
    kind: str
    message: str


@dataclass(frozen=True)
class SparseCategory:
    """A category observed fewer than ``min_count`` times (weighted count)."""

    item_id: str
    category: int
    count: float


@dataclass(frozen=True)
class CategoryCollapse:
    """How the categories of one item were merged.

    ``mapping[k]`` is the new category of original category ``k``; responses
    must be recoded with it before scoring with the calibrated parameters.
    """

    item_id: str
    mapping: tuple
    original_counts: tuple
    new_counts: tuple


@dataclass(frozen=True)
class CalibrationResult:
    """The outcome of :func:`calibrate`.

    Attributes
    ----------
    ids : tuple of str, length n_items
    a : ndarray, shape (n_items,)
        Slopes (D = 1).
    b : ndarray, shape (n_items, kmax - 1)
        Thresholds (GRM) or step parameters (GPCM), NaN-padded.
    models : tuple of str
        ``"grm"`` or ``"gpcm"`` per item.
    loglik : float
        Marginal log-likelihood at the returned parameters.
    n_iter : int
        EM cycles run.
    converged : bool
        Whether the largest parameter change fell below ``tol``.
    item_converged : ndarray of bool, shape (n_items,)
    issues : tuple of ItemIssue
        Items that failed to converge or hit a bound, by id.
    history : tuple of float
        Marginal log-likelihood after each E-step (non-decreasing).
    se_a, se_b : ndarray or None
        Standard errors (cross-product of person scores), when requested.
    sparse_categories : tuple of SparseCategory
        Categories with fewer than ``min_count`` observations (before collapsing).
    collapsed : tuple of CategoryCollapse
        Category merges done with ``collapse_sparse=True``.
    fixed : ndarray of bool, shape (n_items,)
        Items held at given parameters (anchors).
    latent_mean, latent_sd : float
        Latent distribution (0 and 1 unless estimated with fixed anchors).
    n_persons : int
        Persons with at least one response.
    n_responses : ndarray of int, shape (n_items,)
    elapsed_s : float
    """

    ids: tuple
    a: np.ndarray
    b: np.ndarray
    models: tuple
    loglik: float
    n_iter: int
    converged: bool
    item_converged: np.ndarray
    issues: tuple
    history: tuple
    se_a: np.ndarray | None
    se_b: np.ndarray | None
    sparse_categories: tuple
    collapsed: tuple
    fixed: np.ndarray
    latent_mean: float
    latent_sd: float
    n_persons: int
    n_responses: np.ndarray
    elapsed_s: float

    @property
    def model(self) -> str:
        """``"grm"``, ``"gpcm"`` or ``"mixed"``."""
        ms = set(self.models)
        return ms.pop() if len(ms) == 1 else "mixed"

    @property
    def n_categories(self) -> np.ndarray:
        return (np.isfinite(self.b).sum(axis=1) + 1).astype(np.intp)

    @property
    def params(self) -> irt.ItemParams:
        """The estimates as validated :class:`cat_prom.irt.ItemParams`."""
        return irt.item_params(self.a, self.b, list(self.models))

    @property
    def failed_items(self) -> list:
        """Ids of items with any :class:`ItemIssue`."""
        return sorted({iss.item_id for iss in self.issues})

    def to_bank(self, **kw):
        """An :class:`~cat_prom.bank.ItemBank` of the estimates (keywords go to ``from_params``)."""
        from .bank import ItemBank

        prov = dict(kw.pop("provenance", {}) or {})
        prov.setdefault("calibration", {
            "method": "MML-EM (Bock-Aitkin), cat_prom.calibration", "loglik": float(self.loglik),
            "n_persons": int(self.n_persons), "n_iter": int(self.n_iter), "converged": bool(self.converged),
        })
        return ItemBank.from_params(self.a, self.b, list(self.models), ids=list(self.ids), provenance=prov, **kw)


# --------------------------------------------------------------------------- quadrature
def quadrature(n_points: int = 61, bound: float = 6.0, mean: float = 0.0,
               sd: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Equally spaced quadrature for a normal latent density.

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
        raise CalibrationError(f"quadrature needs >= 5 points and a positive bound; got {n_points}, {bound}")
    nodes = np.linspace(-bound, bound, int(n_points))
    return nodes, _normal_weights(nodes, mean, sd)


def _normal_weights(nodes, mean, sd):
    logw = -0.5 * ((nodes - mean) / sd) ** 2
    w = np.exp(logw - logw.max())
    return w / w.sum()


# --------------------------------------------------------------------------- helpers
def _as_params(params) -> irt.ItemParams:
    """Accept ItemParams, an ItemBank, a CalibrationResult or (a, b[, model])."""
    if isinstance(params, irt.ItemParams):
        return params
    if hasattr(params, "params") and isinstance(getattr(params, "params"), irt.ItemParams):
        return params.params
    if isinstance(params, (tuple, list)) and len(params) in (2, 3):
        return irt.item_params(*params)
    raise InvalidDataError("params must be ItemParams, an ItemBank, a CalibrationResult or a tuple (a, b[, model])")


def _ids_of(obj, n, ids=None):
    if ids is not None:
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise InvalidDataError(f"ids has {len(ids)} entries for {n} items")
        return ids
    if hasattr(obj, "ids"):
        return [str(i) for i in obj.ids]
    return [f"I{i + 1}" for i in range(n)]


def _eta_to_ab(eta, n_cat, is_gpcm):
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


def _ab_to_eta(a, b, n_cat, is_gpcm):
    m = b.shape[1]
    valid = np.arange(1, m + 1)[None, :] < n_cat[:, None]
    bz = np.where(valid, b, 0.0)
    d_grm = -a[:, None] * bz
    d_gpcm = -a[:, None] * np.cumsum(bz, axis=1)
    d = np.where(is_gpcm[:, None], d_gpcm, d_grm)
    d = np.where(valid, d, 0.0)
    return np.concatenate([a[:, None], d], axis=1)


def _logp_eta(eta, theta, n_cat, is_gpcm):
    """Category log-probabilities, shape (n_theta, n_items, kmax), via the irt kernels."""
    a, b = _eta_to_ab(eta, n_cat, is_gpcm)
    p = irt.ItemParams(a=a, b=b, is_gpcm=is_gpcm, n_cat=n_cat)
    return irt.log_probabilities(theta, p)


def _probs_jac(eta, theta, n_cat, is_gpcm):
    """Category probabilities and their Jacobian in the slope-intercept parameters.

    Returns
    -------
    logP : (n_items, n_q, K)
    J : (n_items, n_q, K, K)   dP_k / d eta_j, eta = (a, d_1..d_{K-1})
    """
    I, K = eta.shape
    m = K - 1
    logP = np.transpose(_logp_eta(eta, theta, n_cat, is_gpcm), (1, 0, 2))  # (I, Q, K)
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


def _log_slope_prior(a, prior):
    """Log-normal slope prior log p(a) (up to a constant), its derivative and Fisher-type curvature."""
    if prior is None:
        z = np.zeros_like(a)
        return z, z, z
    mu, sd = prior
    la = np.log(np.maximum(a, 1e-300))
    lp = -la - 0.5 * ((la - mu) / sd) ** 2
    d1 = -1.0 / a - (la - mu) / (sd ** 2 * a)
    return lp, d1, 1.0 / (sd ** 2 * a ** 2)


def _objective(eta, theta, r, n_cat, is_gpcm, prior=None):
    """Expected complete-data log-likelihood (+ log slope prior) per item, shape (n_items,); r is (I, Q, K)."""
    logP = np.transpose(_logp_eta(eta, theta, n_cat, is_gpcm), (1, 0, 2))
    logP = np.where(np.isfinite(logP), logP, _LOG_FLOOR)
    return (r * logP).sum(axis=(1, 2)) + _log_slope_prior(eta[:, 0], prior)[0]


def _feasible(eta, n_cat, is_gpcm):
    a = eta[:, 0]
    ok = np.isfinite(eta).all(axis=1) & (a > _A_MIN) & (a < _A_MAX)
    m = eta.shape[1] - 1
    if m > 1:
        valid = np.arange(2, m + 1)[None, :] < n_cat[:, None]  # pairs (k, k+1) both valid
        dec = eta[:, 2:] < eta[:, 1:-1] - 1e-8
        ok &= is_gpcm | np.all(dec | ~valid, axis=1)
    return ok


def _m_step(eta, theta, r, n_cat, is_gpcm, free, prior=None, n_newton=3, max_halving=20):
    """Fisher-scoring M-step, vectorised across items; returns the new eta.

    r : (I, Q, K) expected counts. Each accepted step increases the item's
    expected complete-data log-likelihood (generalized EM).
    """
    I, K = eta.shape
    pad = np.zeros((I, K), dtype=bool)
    pad[:, 1:] = ~(np.arange(1, K)[None, :] < n_cat[:, None])
    n_q = r.sum(axis=2)  # (I, Q)
    obj = _objective(eta, theta, r, n_cat, is_gpcm, prior)
    active = free.copy()
    for _ in range(n_newton):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        e = eta[idx]
        logP, J = _probs_jac(e, theta, n_cat[idx], is_gpcm[idx])
        P = np.exp(logP)
        inv = np.where(P > 1e-300, 1.0 / np.maximum(P, 1e-300), 0.0)
        grad = np.einsum("iqk,iqkj->ij", r[idx] * inv, J)
        wJ = J * (n_q[idx][:, :, None] * inv)[..., None]
        info = np.einsum("iqkj,iqkl->ijl", wJ, J)
        if prior is not None:
            _, g1, h1 = _log_slope_prior(e[:, 0], prior)
            grad[:, 0] += g1
            info[:, 0, 0] += h1
        pd = pad[idx]
        grad[pd] = 0.0
        diag = np.arange(K)
        info[:, diag, diag] += np.where(pd, 1.0, 1e-8 * (1.0 + np.abs(info[:, diag, diag])))
        try:
            step = np.linalg.solve(info, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = grad / np.maximum(np.abs(info[:, diag, diag]), 1e-8)
        step[pd] = 0.0
        big = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, 3.0 / np.maximum(big, 1e-300))[:, None]  # trust region
        t = np.ones(idx.size)
        accepted = np.zeros(idx.size, dtype=bool)
        new_e = e.copy()
        old_obj = obj[idx]
        for _h in range(max_halving):
            todo = ~accepted
            if not todo.any():
                break
            cand = e + t[:, None] * step
            feas = _feasible(cand, n_cat[idx], is_gpcm[idx]) & todo
            cand_obj = np.full(idx.size, -np.inf)
            if feas.any():
                f = np.flatnonzero(feas)
                cand_obj[f] = _objective(cand[f], theta, r[idx[f]], n_cat[idx[f]], is_gpcm[idx[f]], prior)
            ok = feas & (cand_obj >= old_obj - 1e-10 * np.abs(old_obj))
            new_e[ok] = cand[ok]
            obj[idx[ok]] = cand_obj[ok]
            accepted |= ok
            t = np.where(accepted, t, t * 0.5)
        eta[idx] = new_e
        moved = np.abs(new_e - e).max(axis=1)
        active[idx[(moved < 1e-9) | ~accepted]] = False
    return eta


class _Indicator:
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
            X = sparse.csr_matrix((np.ones(n), (rows, cols)), shape=shape)
            self.X, self.XT, self.dense = X, X.T.tocsr(), False

    def dot(self, M):
        """X @ M, shape (n_patterns, M.shape[1])."""
        return self.X @ M

    def tdot(self, M):
        """X.T @ M, shape (n_items * kmax, M.shape[1])."""
        return self.XT @ M


# --------------------------------------------------------------------------- data preparation
def _prepare_responses(responses):
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


def _fixed_spec(fixed, ids, n_items):
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


# --------------------------------------------------------------------------- starting values
def _start_values(X, w, n_cat, is_gpcm, K):
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


# --------------------------------------------------------------------------- EM
def calibrate(responses: ArrayLike, model: str | Sequence[str] = "grm", *,
              ids: Sequence[str] | None = None,
              n_categories: int | Sequence[int] | None = None,
              weights: ArrayLike | None = None,
              fixed: Any = None,
              estimate_latent: bool | None = None,
              start: str | tuple = "auto",
              n_quad: int = 61, quad_bound: float = 6.0,
              max_iter: int = 500, tol: float = 1e-4,
              min_count: float = 5, collapse_sparse: bool = False,
              slope_prior: tuple[float, float] | None = None,
              se: bool = False,
              accelerate: bool = True,
              progress: ProgressCallback | None = None) -> CalibrationResult:
    r"""Marginal maximum likelihood item calibration by EM (Bock and Aitkin, 1981).

    The marginal log-likelihood maximised is

    .. math::

        \ell = \sum_p w_p \log \sum_q \pi_q \prod_{i \in A_p} P_{i x_{pi}}(\theta_q),

    where :math:`A_p` is the set of items person *p* answered, :math:`\pi_q`
    the normal quadrature weights and :math:`w_p` optional frequency weights.
    The E-step computes the posterior over the nodes for every person with one
    matrix product (one-hot responses ``(n_persons, n_items*kmax)`` times
    :math:`\log P` ``(n_items*kmax, n_q)``) and the expected category counts
    :math:`r_{ikq}` with a second; the M-step is Fisher scoring on
    :math:`\sum_{qk} r_{ikq}\log P_{ik}(\theta_q)`, vectorised across items,
    with step halving so every cycle increases :math:`\ell`.

    Parameters
    ----------
    responses : array_like, shape (n_persons, n_items)
        0-based categories; NaN or -1 for not answered. Missing answers are left
        out of the person's likelihood (valid under missing at random, e.g. CAT).
    model : {"grm", "gpcm"} or sequence of them, one per item
    ids : sequence of str, optional
        Item ids (default ``I1..In``); used in messages, results and ``fixed``.
    n_categories : int or sequence of int, optional
        Categories per item; default ``max observed + 1``.
    weights : array_like, shape (n_persons,), optional
        Frequency weights (e.g. counts of response patterns).
    fixed : ItemBank or mapping, optional
        Anchor items held at known parameters: an :class:`~cat_prom.bank.ItemBank`
        (items matched by id) or ``{id or column: (a, thresholds[, model])}``.
        The remaining items are calibrated onto the anchors' metric.
    estimate_latent : bool, optional
        Estimate the latent mean and SD (normal, re-fitted each cycle: the
        "multiple weights updating" FIPC of Kim, 2006). Default: True when
        ``fixed`` is given, else False (the metric is then N(0, 1)).
    start : "auto" | "simple" | "girth" | (a, b)
        Starting values: simple moment-based values (default), girth's GRM MML
        (complete or randomly missing GRM data only), or explicit arrays.
    n_quad, quad_bound : int, float
        Rectangular quadrature: ``n_quad`` equally spaced nodes on ±``quad_bound``.
    max_iter : int
        Maximum EM cycles.
    tol : float
        Convergence when the largest change of any slope or intercept
        (slope-intercept metric, as in mirt) between cycles is below ``tol``.
    min_count : float
        Categories with fewer (weighted) observations are reported in
        ``sparse_categories``; categories with none make the calibration fail
        unless ``collapse_sparse``.
    collapse_sparse : bool
        Merge each sparse category into its adjacent category with fewer
        observations until every category has at least ``min_count``; the
        mappings are in ``result.collapsed``.
    slope_prior : (float, float), optional
        ``(mu, sigma)`` of a log-normal prior on the slopes, making the
        estimates MAP (Bayes modal, Mislevy 1986) instead of ML. Off by default
        (pure ML, as mirt); ``(0.0, 0.5)`` keeps slopes finite on thin data
        such as small CAT samples where an item was given to few people. With
        a prior, ``history`` tracks the log posterior (log-likelihood + log
        prior), which is what the EM increases; ``loglik`` stays the marginal
        log-likelihood.
    se : bool
        Also compute standard errors from the cross-product of person scores
        (the "XPD" information; adequate for reporting, slightly liberal).
    accelerate : bool
        SQUAREM extrapolation (Varadhan and Roland, 2008) between EM cycles;
        an extrapolated point is kept only if it does not lower the
        log-likelihood, so the sequence stays monotone.
    progress : callable, optional
        Called as ``progress(cycle, loglik, max_change)`` after each cycle.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    InvalidDataError
        Malformed responses (non-integer, negative, wrong shape).
    CalibrationError
        An item nobody answered, an item with a single observed category, an
        unobserved category without ``collapse_sparse``, or bad ``fixed``.
    """
    t0 = time.perf_counter()
    X = _prepare_responses(responses)
    N, I = X.shape
    ids = _ids_of(None, I, ids)
    if len(set(ids)) != I:
        raise InvalidDataError("item ids must be unique")
    if weights is None:
        w = np.ones(N)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (N,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InvalidDataError(f"weights must be finite, >= 0 and of shape ({N},)")
    if isinstance(model, str):
        models = [model.lower()] * I
    else:
        models = [str(m).lower() for m in model]
        if len(models) != I:
            raise CalibrationError(f"model: got {len(models)} models for {I} items")
    for m in set(models):
        if m not in irt.MODELS:
            raise CalibrationError(f"unknown model {m!r}; use one of {irt.MODELS}")
    fixed_spec = _fixed_spec(fixed, ids, I)
    for j, (_, _, fm) in fixed_spec.items():
        if fm is not None:
            models[j] = fm.lower()
    is_gpcm = np.array([m == "gpcm" for m in models])
    is_fixed = np.zeros(I, dtype=bool)
    is_fixed[list(fixed_spec)] = True

    # ---- per-item checks: nobody answered, categories
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
        n_cat = np.broadcast_to(np.asarray(n_categories, dtype=np.int64), (I,)).copy()
        if np.any(n_cat < 2):
            raise CalibrationError("n_categories must be >= 2 for every item")
    for j, (a_f, thr, _) in fixed_spec.items():
        n_cat[j] = len(thr) + 1
    over = xmax >= n_cat
    if over.any():
        j = int(np.flatnonzero(over)[0])
        raise InvalidDataError(f"item {ids[j]!r} takes categories 0-{n_cat[j] - 1}, got {xmax[j]}", item_id=ids[j])

    sparse_found, collapsed = [], []
    for j in range(I):
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
            mapping, new_counts = _collapse_map(counts, min_count)
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
    K = int(n_cat.max())

    # ---- collapse identical response patterns (frequency weights)
    keep = ans.any(axis=1) & (w > 0)
    Xk, wk = X[keep], w[keep]
    if Xk.shape[0] == 0:
        raise CalibrationError("no person answered any item")
    pat, inv = np.unique(Xk, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    wp = np.bincount(inv, weights=wk, minlength=pat.shape[0])
    U = pat.shape[0]
    pr, pc = np.nonzero(pat >= 0)
    ind = _Indicator(pr, pc * K + pat[pr, pc], (U, I * K))

    # ---- starting values
    theta, prior = quadrature(n_quad, quad_bound)
    if isinstance(start, (tuple, list)):
        a0, b0 = np.asarray(start[0], float), np.asarray(start[1], float)
        if b0.ndim == 1:
            b0 = b0[:, None]
        if a0.shape != (I,) or b0.shape[0] != I:
            raise CalibrationError("start=(a, b) must have shapes (n_items,) and (n_items, kmax-1)")
        bb = np.full((I, K - 1), np.nan)
        bb[:, : min(K - 1, b0.shape[1])] = b0[:, : K - 1]
        eta = _ab_to_eta(a0, bb, n_cat, is_gpcm)
    elif start == "girth":
        if is_gpcm.any():
            raise CalibrationError("start='girth' supports GRM items only")
        ga, gb = girth_grm(np.where(X >= 0, X, np.nan), max_iteration=25)
        bb = np.full((I, K - 1), np.nan)
        bb[:, : gb.shape[1]] = gb[:, : K - 1]
        eta = _ab_to_eta(np.clip(ga, 0.2, 5), bb, n_cat, is_gpcm)
        bad = ~_feasible(eta, n_cat, is_gpcm)
        if bad.any():
            eta[bad] = _start_values(X, w, n_cat, is_gpcm, K)[bad]
    elif start in ("auto", "simple"):
        eta = _start_values(X, w, n_cat, is_gpcm, K)
    else:
        raise CalibrationError(f"start must be 'auto', 'simple', 'girth' or (a, b); got {start!r}")
    for j, (a_f, thr, _) in fixed_spec.items():
        bb = np.full((1, K - 1), np.nan)
        bb[0, : len(thr)] = thr
        eta[j] = _ab_to_eta(np.array([a_f]), bb, n_cat[j:j + 1], is_gpcm[j:j + 1])[0]
        try:
            irt.item_params([a_f], bb, models[j])
        except CatPromError as e:
            raise CalibrationError(f"fixed item {ids[j]!r}: {e}", item_id=ids[j]) from None

    if slope_prior is not None:
        try:
            slope_prior = (float(slope_prior[0]), float(slope_prior[1]))
        except (TypeError, ValueError, IndexError):
            raise CalibrationError("slope_prior must be (mu, sigma) of log(a)") from None
        if not (np.isfinite(slope_prior[0]) and np.isfinite(slope_prior[1]) and slope_prior[1] > 0):
            raise CalibrationError(f"slope_prior must be finite with sigma > 0; got {slope_prior}")
    if estimate_latent is None:
        estimate_latent = bool(is_fixed.any())
    if estimate_latent and not is_fixed.any():
        raise CalibrationError("estimate_latent=True needs fixed anchor items to identify the metric")
    free = ~is_fixed

    # ---- EM cycles (optionally SQUAREM-accelerated; every accepted point raises the loglik)
    def em_map(e, lat):
        """One EM cycle from (eta, (mu, sd)): returns loglik at the input and the next state."""
        lp = np.log(_normal_weights(theta, lat[0], lat[1]))
        ll_, post_, r_ = _e_step(ind, e, theta, lp, wp, n_cat, is_gpcm, I, K)
        if estimate_latent:
            Nq = wp @ post_
            tot_ = Nq.sum()
            m_ = float(Nq @ theta / tot_)
            lat = (m_, float(np.sqrt(max(Nq @ (theta - m_) ** 2 / tot_, 1e-4))))
        if slope_prior is not None:  # the EM ascends the log posterior
            ll_ += float(_log_slope_prior(e[free, 0], slope_prior)[0].sum())
        return ll_, _m_step(e.copy(), theta, r_, n_cat, is_gpcm, free, slope_prior), lat

    def item_delta(e1, e0):
        d = np.abs(e1 - e0)
        return np.where(np.isfinite(d), d, 0.0).max(axis=1)

    history = []
    converged = False
    item_change = np.full(I, np.inf)
    n_iter = 0
    lat = (0.0, 1.0)
    while n_iter < max_iter:
        n_iter += 1
        ll0, eta1, lat1 = em_map(eta, lat)
        history.append(ll0)
        item_change = item_delta(eta1, eta)
        max_change = max(float(item_change.max()), abs(lat1[0] - lat[0]), abs(lat1[1] - lat[1]))
        if progress is not None:
            progress(n_iter, ll0, max_change)
        if max_change < tol:
            eta, lat, converged = eta1, lat1, True
            break
        if not accelerate:
            eta, lat = eta1, lat1
            continue
        ll1, eta2, lat2 = em_map(eta1, lat1)
        x0 = np.concatenate([eta[free].ravel(), [lat[0], np.log(lat[1])]])
        x1 = np.concatenate([eta1[free].ravel(), [lat1[0], np.log(lat1[1])]])
        x2 = np.concatenate([eta2[free].ravel(), [lat2[0], np.log(lat2[1])]])
        rr, vv = x1 - x0, x2 - 2 * x1 + x0
        nv = np.linalg.norm(vv)
        alpha = min(-1.0, -np.linalg.norm(rr) / nv) if nv > 0 else -1.0
        xn = x0 - 2 * alpha * rr + alpha ** 2 * vv
        cand = eta.copy()
        cand[free] = xn[:-2].reshape(-1, K)
        cand_lat = (float(xn[-2]), float(np.exp(xn[-1])))
        accepted = False
        if _feasible(cand[free], n_cat[free], is_gpcm[free]).all() and np.isfinite(xn).all():
            ll_c, eta_c, lat_c = em_map(cand, cand_lat)  # stabilising EM step from the extrapolated point
            if ll_c >= ll1 - 1e-9 * abs(ll1):
                history.append(ll1)
                history.append(ll_c)
                eta, lat, accepted = eta_c, lat_c, True
        if not accepted:
            history.append(ll1)
            eta, lat = eta2, lat2
    mu, sd = lat
    log_prior = np.log(_normal_weights(theta, mu, sd))
    ll, post, r = _e_step(ind, eta, theta, log_prior, wp, n_cat, is_gpcm, I, K)
    history.append(ll if slope_prior is None else ll + float(_log_slope_prior(eta[free, 0], slope_prior)[0].sum()))

    a, b = _eta_to_ab(eta, n_cat, is_gpcm)
    for j, (a_f, thr, _) in fixed_spec.items():  # exact bank values for anchors
        a[j] = a_f
        b[j, :] = np.nan
        b[j, : len(thr)] = thr
    if b.shape[1] < K - 1:
        b = np.pad(b, ((0, 0), (0, K - 1 - b.shape[1])), constant_values=np.nan)

    item_conv = (item_change < tol) | is_fixed
    issues = []
    for j in range(I):
        if is_fixed[j]:
            continue
        if not item_conv[j]:
            issues.append(ItemIssue(ids[j], "not_converged",
                                    f"item {ids[j]!r}: parameters still changed by {item_change[j]:.2g} after "
                                    f"{n_iter} cycles; raise max_iter or inspect the item"))
        if a[j] > 0.9 * _A_MAX:
            issues.append(ItemIssue(ids[j], "slope_at_bound",
                                    f"item {ids[j]!r}: slope {a[j]:.3g} at the upper bound (near-perfect separation); "
                                    f"check for a duplicate or sparse item"))
        elif a[j] < 0.05:
            issues.append(ItemIssue(ids[j], "slope_near_zero",
                                    f"item {ids[j]!r}: slope {a[j]:.3g} ~ 0; the item does not discriminate "
                                    f"(is it reverse-keyed?)"))
        if np.nanmax(np.abs(b[j])) > 10:
            issues.append(ItemIssue(ids[j], "extreme_threshold",
                                    f"item {ids[j]!r}: a threshold beyond ±10 ({np.nanmax(np.abs(b[j])):.3g}); "
                                    f"consider collapse_sparse=True"))

    se_a = se_b = None
    if se:
        se_a, se_b = _xpd_se(ind, pat, wp, post, eta, theta, n_cat, is_gpcm, free, I, K)

    return CalibrationResult(
        ids=tuple(ids), a=a, b=b, models=tuple(models), loglik=float(ll), n_iter=n_iter, converged=converged,
        item_converged=item_conv, issues=tuple(issues), history=tuple(history), se_a=se_a, se_b=se_b,
        sparse_categories=tuple(sparse_found), collapsed=tuple(collapsed), fixed=is_fixed,
        latent_mean=mu, latent_sd=sd, n_persons=int(keep.sum()), n_responses=n_resp.astype(np.int64),
        elapsed_s=time.perf_counter() - t0,
    )


def _e_step(ind, eta, theta, log_prior, wp, n_cat, is_gpcm, I, K):
    logP = _logp_eta(eta, theta, n_cat, is_gpcm)  # (Q, I, K)
    logP = np.where(np.isfinite(logP), logP, _LOG_FLOOR)
    L = ind.dot(logP.reshape(theta.shape[0], I * K).T)  # (U, Q)
    L += log_prior[None, :]
    mx = L.max(axis=1)
    post = np.exp(L - mx[:, None])
    tot = post.sum(axis=1)
    post /= tot[:, None]
    ll = float(wp @ (mx + np.log(tot)))
    r = ind.tdot(post * wp[:, None])  # (I*K, Q)
    r = np.transpose(np.asarray(r).reshape(I, K, theta.shape[0]), (0, 2, 1))  # (I, Q, K)
    return ll, post, r


def _collapse_map(counts, min_count):
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


def _xpd_se(ind, pat, wp, post, eta, theta, n_cat, is_gpcm, free, I, K):
    """Standard errors from the cross-product of per-pattern score vectors."""
    logP, J = _probs_jac(eta, theta, n_cat, is_gpcm)  # (I, Q, K), (I, Q, K, K)
    P = np.exp(logP)
    D = J * np.where(P > 1e-300, 1.0 / np.maximum(P, 1e-300), 0.0)[..., None]  # dlogP/deta (I, Q, K, npar)
    U = pat.shape[0]
    npar = K
    free_idx = np.flatnonzero(free)
    pad = ~(np.arange(1, K)[None, :] < n_cat[:, None])
    par_mask = np.concatenate([np.ones((I, 1), bool), ~pad], axis=1)  # (I, npar)
    sel = [(i, j) for i in free_idx for j in range(npar) if par_mask[i, j]]
    n_sel = len(sel)
    info = np.zeros((n_sel, n_sel))
    chunk = max(1, int(2_000_000 // max(1, I * npar)))
    for s in range(0, U, chunk):  # chunks of patterns keep memory bounded; vectorised within
        pp = post[s:s + chunk]
        x = pat[s:s + chunk]
        G = np.zeros((pp.shape[0], I, npar))
        for i in free_idx:
            a_ = x[:, i] >= 0
            if not a_.any():
                continue
            Dk = D[i][:, x[a_, i], :]  # (Q, n, npar)
            G[a_, i, :] = np.einsum("nq,qnj->nj", pp[a_], Dk)
        Gs = np.stack([G[:, i, j] for i, j in sel], axis=1)
        info += (Gs * wp[s:s + chunk, None]).T @ Gs
    try:
        cov = np.linalg.pinv(info)
    except np.linalg.LinAlgError:  # pragma: no cover
        return None, None
    var = np.full((I, npar), np.nan)
    full_cov = {}
    for n_, (i, j) in enumerate(sel):
        var[i, j] = cov[n_, n_]
        full_cov[(i, j)] = n_
    se_a = np.sqrt(var[:, 0])
    # delta method to thresholds
    se_b = np.full((I, K - 1), np.nan)
    for i in free_idx:
        k_i = int(n_cat[i])
        a = eta[i, 0]
        idx = [full_cov[(i, j)] for j in range(k_i)]
        C = cov[np.ix_(idx, idx)]
        d = eta[i, 1:k_i]
        for k in range(k_i - 1):
            g = np.zeros(k_i)
            if is_gpcm[i]:
                prev = d[k - 1] if k > 0 else 0.0
                g[0] = (d[k] - prev) / a ** 2
                g[k + 1] = -1.0 / a
                if k > 0:
                    g[k] = 1.0 / a
            else:
                g[0] = d[k] / a ** 2
                g[k + 1] = -1.0 / a
            se_b[i, k] = np.sqrt(max(g @ C @ g, 0.0))
    return se_a, se_b


# --------------------------------------------------------------------------- simulation & information
def simulate_responses(theta: ArrayLike, params: Any, rng: np.random.Generator, *,
                       missing: ArrayLike | None = None) -> np.ndarray:
    """Draw category responses.

    Parameters
    ----------
    theta : array_like, shape (n_persons,)
    params : ItemParams, ItemBank, CalibrationResult or (a, b[, model])
    rng : numpy.random.Generator
        The only source of randomness.
    missing : array_like of bool, shape (n_persons, n_items), optional
        Where True, the response is set to -1 (not answered).

    Returns
    -------
    ndarray of int, shape (n_persons, n_items)
        0-based categories (-1 where ``missing``); draws by inverting the
        cumulative category probabilities with one uniform per response.
    """
    if not isinstance(rng, np.random.Generator):
        raise InvalidDataError("rng must be a numpy.random.Generator (use np.random.default_rng(seed))")
    p = _as_params(params)
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    P = irt.probabilities(theta, p)  # (n, I, K)
    cum = np.cumsum(P, axis=2)
    u = rng.random(P.shape[:2])
    x = (u[..., None] >= cum[..., :-1]).sum(axis=2)
    x = np.minimum(x, p.n_cat[None, :] - 1).astype(np.int64)
    if missing is not None:
        m = np.asarray(missing, dtype=bool)
        if m.shape != x.shape:
            raise InvalidDataError(f"missing must have shape {x.shape}, got {m.shape}")
        x = np.where(m, -1, x)
    return x


def test_information(theta: ArrayLike, params: Any) -> np.ndarray:
    r"""Test information :math:`I(\theta) = \sum_i I_i(\theta)`, shape (n_theta,)."""
    return irt.information(theta, _as_params(params)).sum(axis=1)


test_information.__test__ = False  # not a pytest test, despite the name


def marginal_reliability(params: Any, *, mean: float = 0.0, sd: float = 1.0, n_quad: int = 121,
                         bound: float = 6.0) -> float:
    r"""Marginal reliability of maximum-likelihood scores (Green et al., 1984).

    .. math::

        \bar\rho = \frac{\sigma^2}{\sigma^2 + \int I(\theta)^{-1} g(\theta)\,d\theta},

    with :math:`g = N(\mu, \sigma^2)` and :math:`I` the test information,
    integrated on ``n_quad`` nodes on ±``bound`` (around ``mean``).

    Returns
    -------
    float in [0, 1)
    """
    p = _as_params(params)
    nodes = np.linspace(mean - bound * sd, mean + bound * sd, n_quad)
    wts = _normal_weights(nodes, mean, sd)
    info = test_information(nodes, p)
    err = float(np.sum(wts / np.maximum(info, 1e-300)))
    return float(sd ** 2 / (sd ** 2 + err))


# --------------------------------------------------------------------------- item fit
@dataclass(frozen=True)
class ItemFitResult:
    """S-X² item fit (Orlando and Thissen, 2000; Kang and Chen, 2008).

    Attributes
    ----------
    ids : tuple of str
    s_x2 : ndarray, shape (n_items,)
    df : ndarray of int, shape (n_items,)
    p_value : ndarray, shape (n_items,) (NaN when df <= 0)
    n_persons : int
        Complete cases used.
    """

    ids: tuple
    s_x2: np.ndarray
    df: np.ndarray
    p_value: np.ndarray
    n_persons: int


def _lw(P):
    """Lord-Wingersky summed-score likelihoods.

    P : (n_items, Q, K) category probabilities. Returns (Q, S_max + 1).
    """
    I, Q, K = P.shape
    f = np.ones((Q, 1))
    for i in range(I):  # the recursion is sequential in items by construction
        Kk = K
        new = np.zeros((Q, f.shape[1] + Kk - 1))
        for k in range(Kk):
            new[:, k:k + f.shape[1]] += f * P[i, :, k][:, None]
        f = new
    return f


def item_fit_sx2(responses: ArrayLike, params: Any, *, ids: Sequence[str] | None = None,
                 n_quad: int = 61, bound: float = 6.0,
                 mincell: float = 1.0, n_estimated: int | Sequence[int] | None = None) -> ItemFitResult:
    r"""Orlando-Thissen S-X² item fit with Lord-Wingersky expected proportions.

    For item *i*, persons are grouped by their summed score *s*; the observed
    proportion :math:`O_{iks}` answering category *k* is compared with

    .. math::

        E_{iks} = \frac{\int P_{ik}(\theta)\, f^{(-i)}(s-k \mid \theta)\, g(\theta)\,d\theta}
                        {\int f(s \mid \theta)\, g(\theta)\,d\theta},

    where :math:`f` and :math:`f^{(-i)}` are the summed-score likelihoods of
    all items and all items but *i* (Lord and Wingersky, 1984), and
    :math:`S\text{-}X^2_i = \sum_s N_s \sum_k (O_{iks}-E_{iks})^2 / E_{iks}`.
    The lowest and highest scores (deterministic for the item) are dropped;
    within each category column, tail cells with expected count below
    ``mincell`` are pooled into the adjacent score group (as in mirt's
    ``itemfit``). Degrees of freedom: retained cells minus retained score
    groups minus the item's number of estimated parameters (Kang and Chen, 2008).

    Missing data: the statistic needs every person's summed score over the
    same items, so only **complete cases** (persons who answered every item)
    are used; on CAT data compute it on a complete-data calibration sample.

    Parameters
    ----------
    responses : array_like, shape (n_persons, n_items)
    params : ItemParams, ItemBank, CalibrationResult or (a, b[, model])
    n_estimated : int or sequence, optional
        Estimated parameters per item (default: number of categories, i.e.
        slope + thresholds; pass 0 for fixed items).

    Returns
    -------
    ItemFitResult
    """
    p = _as_params(params)
    X = _prepare_responses(responses)
    N, I = X.shape
    if I != p.n_items:
        raise InvalidDataError(f"responses have {I} items but params {p.n_items}")
    ids = _ids_of(params, I, ids)
    complete = (X >= 0).all(axis=1)
    Xc = X[complete]
    if Xc.shape[0] == 0:
        raise CalibrationError("S-X² needs complete cases (persons who answered every item); there are none")
    over = Xc >= p.n_cat[None, :]
    if over.any():
        j = int(np.flatnonzero(over.any(axis=0))[0])
        raise InvalidDataError(f"item {ids[j]!r} takes categories 0-{p.n_cat[j] - 1}, got {Xc[:, j].max()}")
    nodes, wts = quadrature(n_quad, bound)
    P = np.transpose(irt.probabilities(nodes, p), (1, 0, 2))  # (I, Q, K)
    K = P.shape[2]
    f_all = _lw(P)
    S = f_all.shape[1] - 1
    score = Xc.sum(axis=1)
    Ns = np.bincount(score, minlength=S + 1).astype(float)
    denom = wts @ f_all  # (S+1,)
    npar = (p.n_cat if n_estimated is None else np.broadcast_to(np.asarray(n_estimated), (I,)))
    sx2 = np.full(I, np.nan)
    dfs = np.zeros(I, dtype=np.int64)
    s_max = int((p.n_cat - 1).sum())
    for i in range(I):  # per-item leave-one-out recursion (n_items is small)
        f_mi = _lw(np.delete(P, i, axis=0))  # (Q, S_i + 1)
        k_i = int(p.n_cat[i])
        E = np.zeros((S + 1, k_i))
        for k in range(k_i):
            num = wts @ (P[i, :, k][:, None] * f_mi)  # (S_i+1,)
            E[k:k + num.size, k] = num
        with np.errstate(invalid="ignore", divide="ignore"):
            E = E / np.where(denom > 0, denom, np.inf)[:, None]
        O = np.zeros((S + 1, k_i))
        np.add.at(O, (score, Xc[:, i]), 1.0)
        rows = slice(1, s_max)  # drop min and max summed score
        Oc, Ec = O[rows], E[rows] * Ns[rows][:, None]
        keep_rows = Ns[rows] > 0
        Oc, Ec = Oc[keep_rows], Ec[keep_rows]
        Ec = np.where(Ec > 0, Ec, 0.0)
        Oc, Ec = Oc.copy(), Ec.copy()
        valid = np.ones_like(Ec, dtype=bool)
        nrow = Ec.shape[0]
        for k in range(k_i):  # pool sparse tail cells per category column
            for rr in range(nrow - 1):
                if valid[rr, k] and Ec[rr, k] < mincell:
                    Ec[rr + 1, k] += Ec[rr, k]
                    Oc[rr + 1, k] += Oc[rr, k]
                    valid[rr, k] = False
                else:
                    break
            for rr in range(nrow - 1, 0, -1):
                if valid[rr, k] and Ec[rr, k] < mincell:
                    Ec[rr - 1, k] += Ec[rr, k]
                    Oc[rr - 1, k] += Oc[rr, k]
                    valid[rr, k] = False
                else:
                    break
        valid &= Ec > 0
        stat = float(np.sum(np.where(valid, (Oc - Ec) ** 2 / np.where(valid, Ec, 1.0), 0.0)))
        df = int(valid.sum() - valid.any(axis=1).sum() - int(npar[i]))
        sx2[i] = stat
        dfs[i] = df
    pval = np.where(dfs > 0, stats.chi2.sf(sx2, np.maximum(dfs, 1)), np.nan)
    return ItemFitResult(ids=tuple(ids), s_x2=sx2, df=dfs, p_value=pval, n_persons=int(Xc.shape[0]))


# --------------------------------------------------------------------------- linking
@dataclass(frozen=True)
class LinkingResult:
    r"""Linking constants and the new parameters placed on the old metric.

    :math:`\theta_{old} = A\,\theta_{new} + B`, so :math:`a^* = a/A`, :math:`b^* = A b + B`.

    Attributes
    ----------
    A, B : float
    method : str
    anchors : tuple of str
    ids : tuple of str
        Ids of all new items, in order of ``a`` and ``b``.
    a, b : ndarray
        All new items' parameters on the old metric.
    models : tuple of str
    criterion : float
        The minimised Stocking-Lord loss (0 for mean-sigma).
    """

    A: float
    B: float
    method: str
    anchors: tuple
    ids: tuple
    a: np.ndarray
    b: np.ndarray
    models: tuple
    criterion: float = 0.0

    @property
    def params(self) -> irt.ItemParams:
        return irt.item_params(self.a, self.b, list(self.models))


def transform_params(params: Any, A: float, B: float) -> irt.ItemParams:
    r"""Put parameters on another metric: :math:`a^* = a/A`, :math:`b^* = A b + B`."""
    if not (np.isfinite(A) and A > 0 and np.isfinite(B)):
        raise CalibrationError(f"linking constants must be finite with A > 0; got A={A}, B={B}")
    p = _as_params(params)
    return irt.ItemParams(a=p.a / A, b=A * p.b + B, is_gpcm=p.is_gpcm, n_cat=p.n_cat)


def _link_inputs(new, old, anchors, new_ids, old_ids):
    pn, po = _as_params(new), _as_params(old)
    idn = _ids_of(new, pn.n_items, new_ids)
    ido = _ids_of(old, po.n_items, old_ids)
    if anchors is None:
        anchors = [i for i in idn if i in set(ido)]
    anchors = [str(x) for x in anchors]
    if len(anchors) < 2:
        raise CalibrationError(f"linking needs at least 2 anchor items common to both sets; got {anchors}")
    jn = {iid: j for j, iid in enumerate(idn)}
    jo = {iid: j for j, iid in enumerate(ido)}
    missing = [x for x in anchors if x not in jn or x not in jo]
    if missing:
        raise CalibrationError(f"anchor item(s) {missing} not found in both parameter sets")
    In = np.array([jn[x] for x in anchors])
    Io = np.array([jo[x] for x in anchors])
    if np.any(pn.n_cat[In] != po.n_cat[Io]):
        bad = [x for x, u, v in zip(anchors, pn.n_cat[In], po.n_cat[Io]) if u != v]
        raise CalibrationError(f"anchor item(s) {bad} have different numbers of categories in the two sets")
    if np.any(pn.is_gpcm[In] != po.is_gpcm[Io]):
        raise CalibrationError("anchor items must use the same model in both sets")
    return pn, po, idn, anchors, In, Io


def _models(p):
    return tuple("gpcm" if g else "grm" for g in p.is_gpcm)


def link_mean_sigma(new: Any, old: Any, anchors: Sequence[str] | None = None, *,
                    new_ids: Sequence[str] | None = None, old_ids: Sequence[str] | None = None) -> LinkingResult:
    r"""Mean-sigma linking (Marco, 1977) on the anchors' thresholds.

    .. math::

        A = \frac{\operatorname{sd}(b_{old})}{\operatorname{sd}(b_{new})},\qquad
        B = \bar b_{old} - A\,\bar b_{new},

    pooling all thresholds of the anchor items.

    Parameters
    ----------
    new, old : ItemBank, CalibrationResult, ItemParams or (a, b[, model])
    anchors : sequence of str, optional
        Anchor ids present in both (default: all common ids).
    new_ids, old_ids : sequence of str, optional
        Ids when ``new`` / ``old`` carry none.
    """
    pn, po, idn, anchors, In, Io = _link_inputs(new, old, anchors, new_ids, old_ids)
    bn, bo = pn.b[In], po.b[Io]
    m = np.isfinite(bn) & np.isfinite(bo)
    sn, so = bn[m].std(), bo[m].std()
    if not sn > 0:
        raise CalibrationError("mean-sigma linking needs anchor thresholds that are not all equal")
    A = float(so / sn)
    B = float(bo[m].mean() - A * bn[m].mean())
    t = transform_params(pn, A, B)
    return LinkingResult(A=A, B=B, method="mean-sigma", anchors=tuple(anchors), ids=tuple(idn), a=t.a, b=t.b,
                         models=_models(pn), criterion=0.0)


def link_stocking_lord(new: Any, old: Any, anchors: Sequence[str] | None = None, *,
                       new_ids: Sequence[str] | None = None, old_ids: Sequence[str] | None = None,
                       n_points: int = 41, bound: float = 4.0) -> LinkingResult:
    r"""Stocking-Lord (1983) characteristic-curve linking.

    Minimises over :math:`(A, B)`

    .. math::

        F(A, B) = \sum_q g_q \Big[\sum_{i \in \text{anchors}} E_i(\theta_q \mid a^{old}, b^{old})
                  - E_i(\theta_q \mid a^{new}/A,\; A b^{new} + B)\Big]^2,

    with :math:`E_i` the expected item score, on ``n_points`` nodes on
    ±``bound`` of the old metric weighted by N(0, 1); started at mean-sigma.
    """
    pn, po, idn, anchors, In, Io = _link_inputs(new, old, anchors, new_ids, old_ids)
    sub_n = irt.ItemParams(a=pn.a[In], b=pn.b[In], is_gpcm=pn.is_gpcm[In], n_cat=pn.n_cat[In])
    sub_o = irt.ItemParams(a=po.a[Io], b=po.b[Io], is_gpcm=po.is_gpcm[Io], n_cat=po.n_cat[Io])
    nodes = np.linspace(-bound, bound, n_points)
    g = _normal_weights(nodes, 0.0, 1.0)
    target = irt.expected_score(nodes, sub_o).sum(axis=1)
    ms = link_mean_sigma(new, old, anchors, new_ids=new_ids, old_ids=old_ids)

    def loss(x):
        A, B = np.exp(x[0]), x[1]
        t = irt.ItemParams(a=sub_n.a / A, b=A * sub_n.b + B, is_gpcm=sub_n.is_gpcm, n_cat=sub_n.n_cat)
        return float(g @ (target - irt.expected_score(nodes, t).sum(axis=1)) ** 2)

    x0 = np.array([np.log(ms.A), ms.B])
    res = optimize.minimize(loss, x0, method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    res2 = optimize.minimize(loss, res.x, method="BFGS", options={"gtol": 1e-12})
    best = res2 if res2.fun <= res.fun else res
    A, B = float(np.exp(best.x[0])), float(best.x[1])
    t = transform_params(pn, A, B)
    return LinkingResult(A=A, B=B, method="stocking-lord", anchors=tuple(anchors), ids=tuple(idn), a=t.a, b=t.b,
                         models=_models(pn), criterion=float(best.fun))


# --------------------------------------------------------------------------- girth boundary
def girth_grm(responses: ArrayLike, *, n_quad: int = 61, bound: float = 6.0,
              max_iteration: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """girth's GRM marginal maximum likelihood (a second opinion, not our estimator).

    ``girth.grm_mml`` estimates each item's thresholds by matching the
    observed marginal category proportions of the people who answered the
    item. That is fine for complete data and for data missing completely at
    random, but **biased** when whether an item was answered depends on the
    person's level, as in CAT-collected data; use :func:`calibrate` there.
    girth also bounds slopes to [0.2, 5] and drops unobserved categories.

    Parameters
    ----------
    responses : array_like, shape (n_persons, n_items)
        0-based categories, NaN or -1 for missing (transposed to girth's
        ``(n_items, n_persons)`` layout with ``girth.INVALID_RESPONSE`` here).

    Returns
    -------
    a : ndarray, shape (n_items,)
    b : ndarray, shape (n_items, kmax - 1), NaN-padded
    """
    import girth  # the only girth import in cat_prom

    X = _prepare_responses(responses)
    none = np.flatnonzero((X < 0).all(axis=0))
    if none.size:
        raise CalibrationError(f"girth_grm: no responses to item column(s) {none.tolist()}; drop them first")
    data = np.where(X >= 0, X, girth.INVALID_RESPONSE).T.astype(int)
    opts = {"quadrature_n": int(n_quad), "quadrature_bounds": (-float(bound), float(bound)),
            "max_iteration": int(max_iteration)}
    with np.errstate(all="ignore"):  # girth takes log(0) on the way; keep numpy quiet
        out = girth.grm_mml(data, options=opts)
    a = np.asarray(out["Discrimination"], dtype=float)
    b = np.asarray(out["Difficulty"], dtype=float)
    return a, b

"""What a calibration returns: the estimates, per-item issues, sparse and collapsed categories."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import irt

__all__ = ["ItemIssue", "SparseCategory", "CategoryCollapse", "CalibrationResult"]


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


@dataclass(frozen=True, eq=False)
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
        from ..bank import ItemBank

        prov = dict(kw.pop("provenance", {}) or {})
        prov.setdefault("calibration", {
            "method": "MML-EM (Bock-Aitkin), cat_prom.calibration", "loglik": float(self.loglik),
            "n_persons": int(self.n_persons), "n_iter": int(self.n_iter), "converged": bool(self.converged),
        })
        return ItemBank.from_params(self.a, self.b, list(self.models), ids=list(self.ids), provenance=prov, **kw)

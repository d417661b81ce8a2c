"""The boundary to girth, a second opinion on GRM calibration (the only module that imports girth)."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import CalibrationError
from .model import prepare_responses

__all__ = ["girth_grm"]


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

    X = prepare_responses(responses)
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

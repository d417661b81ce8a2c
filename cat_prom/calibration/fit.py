"""Item fit (S-X²), test information and marginal reliability of a calibrated item set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import chdtrc

from .. import grid, irt
from ..errors import CalibrationError, InvalidDataError
from ..scoring import lord_wingersky
from .model import as_params, ids_of, prepare_responses, quadrature

__all__ = ["ItemFitResult", "item_fit_sx2", "test_information", "marginal_reliability", "MISFIT_ALPHA"]

#: Items with an S-X² p-value below this are flagged as misfitting (reports and bank provenance).
MISFIT_ALPHA = 0.01


def test_information(theta: ArrayLike, params: Any) -> np.ndarray:
    r"""Test information :math:`I(\theta) = \sum_i I_i(\theta)`, shape (n_theta,)."""
    return irt.information(theta, as_params(params)).sum(axis=1)


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
    p = as_params(params)
    nodes = grid.nodes(mean - bound * sd, mean + bound * sd, n_quad)
    wts = grid.normal_weights(nodes, mean, sd)
    info = test_information(nodes, p)
    err = float(np.sum(wts / np.maximum(info, 1e-300)))
    return float(sd ** 2 / (sd ** 2 + err))


@dataclass(frozen=True, eq=False)
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


def _combine(A, B):
    """Summed-score likelihoods of two disjoint item sets, combined: ``out[:, s] = sum_t A[:, t] B[:, s - t]``.

    ``A`` is ``(Q, m)``, ``B`` is ``(Q, n)``, the result ``(Q, m + n - 1)``: the score of the union is the
    sum of the scores of the parts, independent given θ (the Lord-Wingersky recursion, one set at a time).
    """
    if A.shape[1] < B.shape[1]:
        A, B = B, A
    out = np.zeros((A.shape[0], A.shape[1] + B.shape[1] - 1))
    for t in range(B.shape[1]):  # over the shorter one
        out[:, t:t + A.shape[1]] += A * B[:, t:t + 1]
    return out


def _leave_one_out(nodes, p: irt.ItemParams) -> list[np.ndarray]:
    """Summed-score likelihoods of all items but one, for each item: ``(Q, S_i + 1)`` arrays.

    The items are cut into blocks of about sqrt(n_items); for item *i* in block *j* the likelihood is
    the combination of every other block's (prefix and suffix products) with block *j*'s without *i*,
    each block's from :func:`cat_prom.scoring.lord_wingersky`. About sqrt(n_items) times less work than
    a recursion over the other items for every item.
    """
    I = p.n_items

    def lw(idx):
        if idx.size == 0:
            return np.ones((nodes.shape[0], 1))
        return lord_wingersky(nodes, irt.ItemParams(a=p.a[idx], b=p.b[idx], is_gpcm=p.is_gpcm[idx],
                                                    n_cat=p.n_cat[idx]))

    size = max(1, int(round(np.sqrt(I))))
    blocks = [np.arange(s, min(I, s + size)) for s in range(0, I, size)]
    per_block = [lw(b) for b in blocks]
    prefix = [np.ones((nodes.shape[0], 1))]
    for L in per_block[:-1]:
        prefix.append(_combine(prefix[-1], L))
    suffix = [np.ones((nodes.shape[0], 1))]
    for L in per_block[:0:-1]:
        suffix.append(_combine(L, suffix[-1]))
    suffix.reverse()
    out = []
    for j, block in enumerate(blocks):
        others = _combine(prefix[j], suffix[j])
        out += [_combine(others, lw(block[block != i])) for i in block]
    return out


def _pooled_statistic(Oc, Ec, mincell) -> tuple[float, np.ndarray]:
    """Pearson statistic of observed vs expected counts (score groups × categories) after pooling each
    category column's tail cells with expected count < ``mincell`` into the adjacent group (mirt's rule).

    Returns the statistic and the mask of the cells kept, shape (n_groups, n_categories).
    """
    valid = np.ones_like(Ec, dtype=bool)
    nrow = Ec.shape[0]
    for k in range(Ec.shape[1]):  # pool sparse tail cells per category column
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
    return stat, valid


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
    p = as_params(params)
    X = prepare_responses(responses)
    N, I = X.shape
    if I != p.n_items:
        raise InvalidDataError(f"responses have {I} items but params {p.n_items}")
    ids = ids_of(params, I, ids)
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
    f_all = lord_wingersky(nodes, p)  # (Q, S + 1)
    S = f_all.shape[1] - 1
    score = Xc.sum(axis=1)
    Ns = np.bincount(score, minlength=S + 1).astype(float)
    denom = wts @ f_all  # (S+1,)
    npar = (p.n_cat if n_estimated is None else np.broadcast_to(np.asarray(n_estimated), (I,)))
    sx2 = np.full(I, np.nan)
    dfs = np.zeros(I, dtype=np.int64)
    s_max = int((p.n_cat - 1).sum())
    for i, f_mi in enumerate(_leave_one_out(nodes, p)):  # f_mi: (Q, S_i + 1), the items but i
        k_i = int(p.n_cat[i])
        E = np.zeros((S + 1, k_i))
        for k in range(k_i):
            num = wts @ (P[i, :, k][:, None] * f_mi)  # (S_i+1,)
            E[k:k + num.size, k] = num
        with np.errstate(invalid="ignore", divide="ignore"):
            E = E / np.where(denom > 0, denom, np.inf)[:, None]
        O = np.bincount(score * k_i + Xc[:, i], minlength=(S + 1) * k_i).reshape(S + 1, k_i).astype(float)
        rows = slice(1, s_max)  # drop min and max summed score
        Oc, Ec = O[rows], E[rows] * Ns[rows][:, None]
        keep_rows = Ns[rows] > 0
        Oc, Ec = Oc[keep_rows], Ec[keep_rows]
        Ec = np.where(Ec > 0, Ec, 0.0)
        stat, valid = _pooled_statistic(Oc.copy(), Ec.copy(), mincell)
        df = int(valid.sum() - valid.any(axis=1).sum() - int(npar[i]))
        sx2[i] = stat
        dfs[i] = df
    pval = np.where(dfs > 0, chdtrc(np.maximum(dfs, 1), sx2), np.nan)
    return ItemFitResult(ids=tuple(ids), s_x2=sx2, df=dfs, p_value=pval, n_persons=int(Xc.shape[0]))

"""Scale linking: put one calibration's parameters on another's metric through common (anchor) items."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import grid, irt
from ..errors import CalibrationError
from .model import as_params, ids_of

__all__ = ["LinkingResult", "transform_params", "link_mean_sigma", "link_stocking_lord"]


@dataclass(frozen=True, eq=False)
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
    p = as_params(params)
    return irt.ItemParams(a=p.a / A, b=A * p.b + B, is_gpcm=p.is_gpcm, n_cat=p.n_cat)


def _link_inputs(new, old, anchors, new_ids, old_ids):
    pn, po = as_params(new), as_params(old)
    idn = ids_of(new, pn.n_items, new_ids)
    ido = ids_of(old, po.n_items, old_ids)
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
    nodes = grid.nodes(-bound, bound, n_points)
    g = grid.normal_weights(nodes, 0.0, 1.0)
    target = irt.expected_score(nodes, sub_o).sum(axis=1)
    ms = link_mean_sigma(new, old, anchors, new_ids=new_ids, old_ids=old_ids)

    def loss(x):
        A, B = np.exp(x[0]), x[1]
        t = irt.ItemParams(a=sub_n.a / A, b=A * sub_n.b + B, is_gpcm=sub_n.is_gpcm, n_cat=sub_n.n_cat)
        return float(g @ (target - irt.expected_score(nodes, t).sum(axis=1)) ** 2)

    from scipy import optimize  # imported here: only linking needs it, and it is slow to import

    x0 = np.array([np.log(ms.A), ms.B])
    res = optimize.minimize(loss, x0, method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    res2 = optimize.minimize(loss, res.x, method="BFGS", options={"gtol": 1e-12})
    best = res2 if res2.fun <= res.fun else res
    A, B = float(np.exp(best.x[0])), float(best.x[1])
    t = transform_params(pn, A, B)
    return LinkingResult(A=A, B=B, method="stocking-lord", anchors=tuple(anchors), ids=tuple(idn), a=t.a, b=t.b,
                         models=_models(pn), criterion=float(best.fun))

"""Bank workflows: from response data (or another bank) to a validated bank with its provenance.

:func:`calibrate_bank` is what ``cat-prom calibrate`` does, as one engine
function: calibrate (optionally on an anchor bank's metric, collapsing sparse
categories), check item fit and reliability, and assemble a validated
:class:`~cat_prom.bank.ItemBank` whose provenance records how it was made.
:func:`link_bank` is what ``cat-prom link`` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..bank import DIRECTIONS, ItemBank
from ..errors import CalibrationError, InvalidDataError
from ..io.responses import ResponseTable
from ..irt import ItemParams
from ..provenance import rounded, software, utc_now
from .em import calibrate
from .fit import MISFIT_ALPHA, ItemFitResult, item_fit_sx2, marginal_reliability
from .linking import LinkingResult, link_mean_sigma, link_stocking_lord
from .results import CalibrationResult

__all__ = ["CalibrationDetails", "calibrate_bank", "bank_item_fit", "link_bank", "LINKING_METHODS"]

#: Fewer complete cases than this make S-X² indicative only.
FEW_COMPLETE_CASES = 200


@dataclass(frozen=True, eq=False)
class CalibrationDetails:
    """Everything :func:`calibrate_bank` found besides the bank itself.

    Attributes
    ----------
    result : CalibrationResult
        The EM's estimates, history, issues, sparse and collapsed categories.
    fit : ItemFitResult or None
        S-X² on the complete cases (None when nobody answered every item).
    fit_note : str or None
        Why fit was not computed, or why it is only indicative.
    misfit : tuple of (item id, S-X², df, p)
        Items misfitting at p < 0.01.
    reliability : float
        Marginal reliability under the estimated latent distribution.
    coding : dict
        How the response cells were turned into categories.
    anchors : tuple of str
        Items held at an anchor bank's parameters.
    n_responses : int
        Answers in the data.
    missing_share : float
        Share of person × item cells without an answer.
    nonconverged : tuple of str
        Items whose parameters were still moving at the last EM cycle.
    source : str or None
        The response file's name.
    """

    result: CalibrationResult
    fit: ItemFitResult | None
    fit_note: str | None
    misfit: tuple
    reliability: float
    coding: dict
    anchors: tuple
    n_responses: int
    missing_share: float
    nonconverged: tuple
    source: str | None


def _collapsed_options(values, labels, mapping) -> list[dict]:
    """Options of an item whose categories were merged: value of the lowest member, joined labels."""
    groups: dict = {}
    for k, g in enumerate(mapping):
        groups.setdefault(int(g), []).append(k)
    return [{"value": values[ks[0]], "label": " / ".join(str(labels[k]) for k in ks)}
            for _, ks in sorted(groups.items())]


def _check_workflow_inputs(table: ResponseTable, anchor, labels, start_item, direction) -> tuple[list, int | None]:
    """Anchors present in the data, and the number of categories of the new items (None if all are anchors)."""
    fname = table.source or "the responses"
    item_ids = list(table.item_ids)
    anchored = [i for i in item_ids if anchor is not None and i in set(anchor.ids)]
    if anchor is not None and not anchored:
        raise InvalidDataError(f"anchor: none of the item columns of {fname} is an item of bank {anchor.id!r}; "
                               f"fixed-anchor calibration needs common item ids")
    if anchor is not None and len(anchored) == len(item_ids):
        raise InvalidDataError(f"anchor: every item of {fname} is in bank {anchor.id!r}; there is nothing new to "
                               f"calibrate")
    coding = table.coding
    new_k = len(coding["values"]) if "values" in coding else None
    if new_k is None and len(anchored) < len(item_ids):  # categories given in Python: max observed + 1
        new_cols = [j for j, i in enumerate(item_ids) if i not in set(anchored)]
        new_k = int(np.nanmax(table.categories[:, new_cols], initial=0)) + 1
    if labels is not None and new_k is not None and len(labels) != new_k:
        vals = coding.get("values", list(range(new_k)))
        raise InvalidDataError(f"labels: {len(labels)} labels given but the items have {new_k} categories "
                               f"({', '.join(map(str, vals))}); give one label per category")
    if start_item is not None and start_item not in item_ids:
        raise InvalidDataError(f"start item {start_item!r} is not an item column of {fname}")
    if direction is not None and direction not in DIRECTIONS:
        raise InvalidDataError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return anchored, new_k


def _item_fit(X, res: CalibrationResult) -> tuple[ItemFitResult | None, str | None, list]:
    """S-X² on the data as calibrated (collapsed categories recoded), with a note when absent or thin."""
    Xf = X.copy()
    col = {iid: j for j, iid in enumerate(res.ids)}
    for cc in res.collapsed:
        j = col[cc.item_id]
        m = np.asarray(cc.mapping)
        ok = ~np.isnan(Xf[:, j])
        Xf[ok, j] = m[Xf[ok, j].astype(int)]
    fit, note = None, None
    if int((~np.isnan(Xf)).all(axis=1).sum()) == 0:
        note = "no person answered every item (CAT or planned-missing data); S-X² needs complete cases"
    else:
        try:
            fit = item_fit_sx2(Xf, res, n_estimated=np.where(res.fixed, 0, res.n_categories))
        except CalibrationError as e:  # pragma: no cover - guarded above
            note = e.message
    misfit = []
    if fit is not None:
        if fit.n_persons < FEW_COMPLETE_CASES:
            note = f"S-X² rests on only {fit.n_persons} complete cases; treat it as indicative"
        misfit = [(fit.ids[j], float(fit.s_x2[j]), int(fit.df[j]), float(fit.p_value[j]))
                  for j in range(len(fit.ids)) if np.isfinite(fit.p_value[j]) and fit.p_value[j] < MISFIT_ALPHA]
    return fit, note, misfit


def _provenance(res, details_in: dict, settings: dict, models, anchor, anchored, date) -> dict:
    """The calibration record of a bank's provenance (rounded numbers, JSON-ready)."""
    fit, misfit, table = details_in["fit"], details_in["misfit"], details_in["table"]
    n_persons, n_items = table.categories.shape
    n_obs = details_in["n_obs"]
    calib = {"loglik": rounded(res.loglik, 3), "em_cycles": int(res.n_iter), "converged": bool(res.converged),
             "marginal_reliability": rounded(details_in["reliability"]), "latent_mean": rounded(res.latent_mean),
             "latent_sd": rounded(res.latent_sd), "nonconverged_items": list(details_in["nonconverged"]),
             "issues": [i.message for i in res.issues]}
    if fit is not None:
        calib["item_fit"] = {"statistic": "S-X2 (Orlando-Thissen; Kang-Chen)", "n_complete_cases": fit.n_persons,
                             "misfit_p_below_0.01": [m[0] for m in misfit]}
    if res.sparse_categories:
        calib["sparse_categories"] = [{"item": s.item_id, "category": s.category, "count": s.count}
                                      for s in res.sparse_categories]
    if res.collapsed:
        calib["collapsed_categories"] = {c.item_id: list(c.mapping) for c in res.collapsed}
    if res.se_a is not None:
        calib["standard_errors"] = {
            iid: {"a": rounded(res.se_a[j]),
                  "thresholds": [rounded(v) for v in res.se_b[j, : res.n_categories[j] - 1]]}
            for j, iid in enumerate(res.ids) if not res.fixed[j]}
    prov = {
        "method": "marginal maximum likelihood, EM algorithm (Bock & Aitkin, 1981); cat-prom calibrate",
        "model": ("mixed" if len(set(models)) > 1 else models[0]) + " (D = 1)",
        "sample": {"file": table.source, "n_persons": int(res.n_persons), "n_items": n_items, "n_responses": n_obs,
                   "missing_share": rounded(1 - n_obs / (n_persons * n_items))},
        "response_coding": table.coding,
        "date": date or utc_now(),
        "software": software(),
        "settings": settings,
        "calibration": calib,
    }
    if anchor is not None:
        prov["anchor"] = {"bank": anchor.id, "version": anchor.version, "content_hash": anchor.content_hash,
                          "items": anchored, "method": "fixed-parameter calibration with the latent mean and SD "
                                                       "estimated (Kim, 2006, multiple weights updating)"}
    return prov


def _assemble(res, prov, table, *, bank_id, name, domain, version, direction, start_item, anchor, anchored,
              stems, labels) -> ItemBank:
    """The bank document: estimates, metadata, options (anchors keep theirs), then validation."""
    direction = direction or (anchor.direction if anchor is not None else "higher_is_worse")
    doc = res.to_bank(id=bank_id, name=name or bank_id, direction=direction, provenance=prov).to_dict()
    doc.pop("content_hash", None)
    doc["version"] = version
    doc["domain"] = domain or (anchor.domain if anchor is not None else bank_id)
    doc["start_item"] = start_item
    anchor_set = set(anchored)
    if anchor is not None:
        doc["metric"] = {"t_mean": anchor.t_mean, "t_sd": anchor.t_sd, "direction": direction}
        adoc = {it["id"]: it for it in anchor.to_dict()["items"]}
    ids_here = set(table.item_ids)
    collapsed = {cc.item_id: cc.mapping for cc in res.collapsed}
    vals = list(table.coding.get("values") or range(int(res.n_categories.max())))
    labs = list(labels) if labels is not None else [str(v) for v in vals]
    for it in doc["items"]:
        iid = it["id"]
        if iid in anchor_set:
            a_it = adoc[iid]
            it["stem"] = stems.get(iid, a_it.get("stem", iid))
            it["options"] = a_it["options"]
            if a_it.get("content"):
                it["content"] = a_it["content"]
            enemies = [x for x in a_it.get("enemies") or [] if x in ids_here]
            if enemies:
                it["enemies"] = enemies
            continue
        it["stem"] = stems.get(iid, iid)
        if iid in collapsed:
            it["options"] = _collapsed_options(vals, labs, collapsed[iid])
        else:
            it["options"] = [{"value": v, "label": lab} for v, lab in zip(vals, labs)][: len(it["thresholds"]) + 1]
    return ItemBank.from_dict(doc, source=table.source)


def calibrate_bank(responses: ResponseTable | Any, *, bank_id: str, model: str = "grm", anchor: ItemBank | None = None,
                   stems: Mapping[str, str] | None = None, labels: Sequence[str] | None = None,
                   name: str | None = None, domain: str | None = None, version: str = "1",
                   direction: str | None = None, start_item: str | None = None,
                   n_quad: int = 61, max_iter: int = 500, tol: float = 1e-4, min_count: float = 5,
                   collapse_sparse: bool = False, slope_prior: tuple[float, float] | None = None,
                   se: bool = True, item_fit: bool = True, date: str | None = None,
                   progress: Callable[[int, float, float], Any] | None = None) -> tuple[ItemBank, CalibrationDetails]:
    """Calibrate a bank from response data: the ``cat-prom calibrate`` workflow as one function.

    Marginal maximum likelihood by EM (:func:`~cat_prom.calibration.calibrate`), S-X² item fit on the
    complete cases, marginal reliability, and a validated bank whose ``provenance`` records the sample,
    the response coding, every setting, the results and the software.

    Parameters
    ----------
    responses : ResponseTable or array_like, shape (n_persons, n_items)
        From :func:`cat_prom.io.read_responses` (raw values coded into categories, with the coding
        recorded), or 0-based categories with NaN for missing (item ids ``I1..In``; use
        :meth:`ResponseTable.from_array` to name them).
    bank_id : str
        Id of the new bank.
    model : {"grm", "gpcm"}
        Model of the new items (anchors keep theirs).
    anchor : ItemBank, optional
        Fixed-anchor calibration: items of this bank keep its parameters, stem, options and content
        tags; the other items and the latent mean and SD are estimated on its metric (Kim, 2006), and
        the new bank takes its T metric and direction.
    stems : mapping item id -> stem, optional
        Item wording (default: the item id; anchors keep theirs). See :func:`cat_prom.io.read_stems_csv`.
    labels : sequence of str, optional
        One label per category of the new items (default: the response values).
    name, domain, version, direction, start_item :
        Bank metadata (defaults: the id; the id or the anchor's domain; ``"1"``; ``higher_is_worse`` or
        the anchor's; none).
    n_quad, max_iter, tol, min_count, collapse_sparse, slope_prior, progress :
        As for :func:`~cat_prom.calibration.calibrate` (``n_quad`` nodes on [-6, 6]).
    se : bool
        Standard errors (XPD), recorded in the provenance (default True).
    item_fit : bool
        S-X² item fit on the complete cases (default True; False saves its time on large data).
    date : str, optional
        Date recorded in the provenance (default: now, or ``SOURCE_DATE_EPOCH``).

    Returns
    -------
    bank : ItemBank
        Validated, not yet saved (``bank.save(path)``).
    details : CalibrationDetails

    Raises
    ------
    InvalidDataError
        Inconsistent inputs (labels, anchors, start item).
    CalibrationError
        Data that cannot be calibrated (an item nobody answered, a constant item, an empty category
        without ``collapse_sparse``), prefixed with the file name.
    """
    table = responses if isinstance(responses, ResponseTable) else ResponseTable.from_array(responses)
    anchored, new_k = _check_workflow_inputs(table, anchor, labels, start_item, direction)
    X = table.categories
    item_ids = list(table.item_ids)
    anchor_set = set(anchored)
    n_cat = [int(anchor.n_cat[anchor.index(i)]) if i in anchor_set else new_k for i in item_ids]
    models = [anchor.item(i).model if i in anchor_set else model for i in item_ids]
    try:
        res = calibrate(X, models, ids=item_ids, n_categories=n_cat, fixed=anchor, n_quad=n_quad,
                        max_iter=max_iter, tol=tol, min_count=min_count, collapse_sparse=collapse_sparse,
                        slope_prior=tuple(slope_prior) if slope_prior else None, se=se, progress=progress)
    except CalibrationError as e:
        raise e.with_source(table.source)
    fit, fit_note, misfit = _item_fit(X, res) if item_fit else (None, "not requested", [])
    reliability = marginal_reliability(res, mean=res.latent_mean, sd=res.latent_sd)
    n_obs = int((~np.isnan(X)).sum())
    nonconverged = tuple(i.item_id for i in res.issues if i.kind == "not_converged")
    settings = {"model": model, "quadrature": f"{n_quad} equally spaced nodes on [-6, 6]",
                "max_iter": max_iter, "tol": tol, "min_count": min_count, "collapse_sparse": bool(collapse_sparse),
                "slope_prior": list(slope_prior) if slope_prior else None,
                "standard_errors": "XPD (cross-product of person scores)" if se else None}
    prov = _provenance(res, {"fit": fit, "misfit": misfit, "table": table, "n_obs": n_obs,
                             "reliability": reliability, "nonconverged": nonconverged},
                       settings, models, anchor, anchored, date)
    bank = _assemble(res, prov, table, bank_id=bank_id, name=name, domain=domain, version=version,
                     direction=direction, start_item=start_item, anchor=anchor, anchored=anchored,
                     stems=dict(stems or {}), labels=labels)
    n_persons, n_items = X.shape
    details = CalibrationDetails(result=res, fit=fit, fit_note=fit_note, misfit=tuple(misfit),
                                 reliability=float(reliability), coding=dict(table.coding), anchors=tuple(anchored),
                                 n_responses=n_obs, missing_share=1 - n_obs / (n_persons * n_items),
                                 nonconverged=nonconverged, source=table.source)
    return bank, details


def bank_item_fit(bank: ItemBank, categories: np.ndarray, *,
                  source: str | None = None) -> tuple[ItemFitResult | None, list[str]]:
    """S-X² of a bank's items on response data (``cat-prom bank report --responses``).

    Parameters
    ----------
    bank : ItemBank
    categories : ndarray, shape (n_persons, bank.n_items)
        0-based categories, NaN where not answered (as :func:`cat_prom.io.read_responses_csv` gives).
        Only items with some answer are included, and only persons who answered all of those.
    source : str, optional
        The response file's name, for the notes.

    Returns
    -------
    fit : ItemFitResult or None
    notes : list of str
        Sentences for the report: items left out, too few complete cases, why fit is missing.
    """
    notes = []
    present = ~np.isnan(categories).all(axis=0)
    if not present.all():
        notes.append(f"Item fit only for the {int(present.sum())} items in {source or 'the responses'}; "
                     f"summed scores are over those items.")
    idx = np.flatnonzero(present)
    p = bank.params
    sub = ItemParams(a=p.a[idx], b=p.b[idx], is_gpcm=p.is_gpcm[idx], n_cat=p.n_cat[idx])
    try:
        fit = item_fit_sx2(categories[:, idx], sub, ids=[bank.ids[i] for i in idx], n_estimated=p.n_cat[idx])
    except CalibrationError as e:
        return None, notes + [f"Item fit not computed: {e.message}"]
    if fit.n_persons < FEW_COMPLETE_CASES:
        notes.append(f"S-X² rests on only {fit.n_persons} complete cases; treat the fit table as indicative.")
    return fit, notes


#: Linking methods of :func:`link_bank` and how the provenance describes them.
LINKING_METHODS = {
    "stocking-lord": "Stocking-Lord (1983) test characteristic curve linking, 41 nodes on [-4, 4], N(0, 1) weights",
    "mean-sigma": "mean-sigma (Marco, 1977) on the anchors' pooled thresholds",
}


def link_bank(new: ItemBank, old: ItemBank, *, method: str = "stocking-lord", anchors: Sequence[str] | None = None,
              date: str | None = None) -> tuple[ItemBank, LinkingResult]:
    r"""Put every item of ``new`` on ``old``'s metric through their common (anchor) items.

    The linking constants satisfy :math:`\theta_{old} = A\,\theta_{new} + B`, so
    :math:`a^* = a/A` and :math:`b^* = A b + B`; the linked bank takes ``old``'s T metric and
    direction and records the linking (method, A, B, anchors, both banks' content hashes) in
    ``provenance.linking``.

    Parameters
    ----------
    new, old : ItemBank
    method : {"stocking-lord", "mean-sigma"}
    anchors : sequence of str, optional
        Default: every item id in both banks (at least 2).
    date : str, optional
        Date recorded in the provenance (default: now, or ``SOURCE_DATE_EPOCH``).

    Returns
    -------
    bank : ItemBank
        Validated, not yet saved.
    link : LinkingResult
    """
    if method not in LINKING_METHODS:
        raise InvalidDataError(f"unknown linking method {method!r}; use {' or '.join(LINKING_METHODS)}")
    fn = link_stocking_lord if method == "stocking-lord" else link_mean_sigma
    try:
        link = fn(new, old, None if anchors is None else list(anchors))
    except CalibrationError as e:
        raise InvalidDataError(f"linking {new.id!r} to {old.id!r}: {e.message}") from None
    doc = new.to_dict()
    doc.pop("content_hash", None)
    for j, it in enumerate(doc["items"]):
        k = int(new.n_cat[j])
        it["a"] = float(link.a[j])
        it["thresholds"] = [float(t) for t in link.b[j, : k - 1]]
    doc["metric"] = {"t_mean": old.t_mean, "t_sd": old.t_sd, "direction": old.direction}
    prov = dict(doc.get("provenance") or {})
    prov["linking"] = {
        "method": LINKING_METHODS[method],
        "A": link.A, "B": link.B, "transformation": "theta_old = A * theta_new + B; a* = a / A; b* = A * b + B",
        "criterion": link.criterion, "anchors": list(link.anchors),
        "to": {"bank": old.id, "version": old.version, "content_hash": old.content_hash},
        "from": {"bank": new.id, "version": new.version, "content_hash": new.content_hash},
        "date": date or utc_now(), "software": software(),
    }
    doc["provenance"] = prov
    return ItemBank.from_dict(doc), link

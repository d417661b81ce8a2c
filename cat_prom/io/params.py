"""Reading and writing the CSV files researchers bring: parameter tables and response data.

Parameter tables come in three layouts (``format``):

``csv``
    cat-prom's own table. Header ``item_id,a,b1,b2,...``; an item with fewer
    categories leaves its trailing thresholds empty. Optional columns ``model``
    (``grm`` or ``gpcm``; empty = the default model), ``stem`` (the question
    text) and ``content`` (content tags separated by ``;``).
``mirt``
    ``coef(mod, IRTpars = TRUE, simplify = TRUE)$items`` written with R's
    ``write.csv``: first column the item names (its header is usually ``""``),
    then ``a``, ``b1``..``bk`` (graded and gpcm items alike). Dichotomous 2PL items
    (columns ``a, b, g, u``) are read as two-category items when ``g`` is 0 and
    ``u`` is 1. The layout does not say which model was fitted: pass ``model``.
``catr``
    catR's polytomous item-bank matrix (``genPolyMatrix`` layout) written with
    ``write.csv``: GRM columns ``alphaj, betaj1..betajk``; GPCM columns
    ``alphaj, deltaj1..deltajk`` (catR's ``"GPCM"``:
    :math:`P_k \\propto \\exp\\sum_{t\\le k}\\alpha_j(\\theta-\\delta_{jt})`, the same
    parameterisation as cat-prom's GPCM); PCM columns ``deltaj1..deltajk`` (read
    as GPCM with α = 1). catR's matrices have no item id column; R's
    ``write.csv`` adds the row names as a first column with an empty header,
    and those become the item ids (else ``I1``, ``I2``, ...). A ``Group`` column
    (catR's content-balancing groups) becomes each item's content tag. Unnamed
    columns (``V1, V2, ...``) are read positionally as α then thresholds.

All layouts use D = 1 (the logistic metric): catR's ``Pi(..., model=...)``
and mirt's ``IRTpars`` are on that metric. Missing cells may be empty or
``NA``. Errors name the file, the 1-based line number and the column.

Item wording for a calibration (:func:`read_stems_csv`): header ``item_id,stem``.
"""
from __future__ import annotations

import os
import re
from typing import Sequence

from ..bank import BANK_FORMAT, DIRECTIONS, ItemBank
from ..errors import CatPromError, InvalidDataError
from .csvfile import check_unique_header, csv_writer, is_missing, number, read_csv_rows, restore_cell

__all__ = ["FORMATS", "read_params_csv", "write_params", "read_stems_csv"]

FORMATS = ("csv", "mirt", "catr")


# --------------------------------------------------------------------------- parameter tables
class _Row:
    __slots__ = ("line", "id", "a", "thr", "model", "stem", "content")

    def __init__(self, line, id, a, thr, model=None, stem=None, content=()):
        self.line, self.id, self.a, self.thr, self.model, self.stem, self.content = (
            line, id, a, thr, model, stem, tuple(content))


def _thresholds(cells, cols, name, line, path) -> list[float]:
    """Leading non-missing threshold cells; a value after a gap is an error."""
    out, gap = [], None
    for cell, col in zip(cells, cols):
        if is_missing(cell):
            gap = gap or col
            continue
        if gap is not None:
            raise InvalidDataError(f"{name} line {line}, column {col!r}: threshold given after the empty column "
                                   f"{gap!r}; an item with fewer categories leaves its trailing thresholds empty",
                                   file=path, line=line, column=col)
        out.append(number(cell, name, line, col, path))
    return out


def _numbered(header, prefix) -> list[tuple[int, str]]:
    """Columns ``prefix1, prefix2, ...`` as (index, name), checked to be contiguous from 1."""
    found = []
    for j, h in enumerate(header):
        m = re.fullmatch(re.escape(prefix) + r"(\d+)", h, flags=re.IGNORECASE)
        if m:
            found.append((int(m.group(1)), j, h))
    found.sort()
    for want, (k, _, h) in enumerate(found, start=1):
        if k != want:
            raise InvalidDataError(f"threshold columns must be {prefix}1, {prefix}2, ... without gaps; "
                                   f"found {h!r} where {prefix}{want} was expected", line=1, column=h)
    return [(j, h) for _, j, h in found]


def _read_cat_prom_csv(header, rows, name, path):
    lower = [h.lower() for h in header]
    if "item_id" not in lower or "a" not in lower:
        raise InvalidDataError(f"{name} line 1: the csv layout needs columns item_id, a, b1, b2, ... "
                               f"(got {', '.join(header)})", file=path, line=1)
    bcols = _numbered(lower, "b")
    if not bcols and "b" in lower:  # a table of dichotomous items may call its threshold b
        bcols = [(lower.index("b"), "b")]
    if not bcols:
        raise InvalidDataError(f"{name} line 1: no threshold columns; the csv layout needs b1, b2, ...",
                               file=path, line=1)
    known = {"item_id", "a", "model", "stem", "content"} | {h for _, h in bcols}
    for j, h in enumerate(lower):
        if h not in known:
            raise InvalidDataError(f"{name} line 1, column {j + 1} ({header[j]!r}): unknown column; the csv layout "
                                   f"has item_id, a, b1..bk and optionally model, stem, content", file=path,
                                   line=1, column=header[j])
    ji, ja = lower.index("item_id"), lower.index("a")
    jm = lower.index("model") if "model" in lower else None
    js = lower.index("stem") if "stem" in lower else None
    jc = lower.index("content") if "content" in lower else None
    out = []
    for line, cells in rows:
        iid = restore_cell(cells[ji]).strip()
        if not iid:
            raise InvalidDataError(f"{name} line {line}, column 'item_id': empty item id", file=path, line=line,
                                   column="item_id")
        a = number(cells[ja], name, line, "a", path)
        thr = _thresholds([cells[j] for j, _ in bcols], [h for _, h in bcols], name, line, path)
        model = None
        if jm is not None and cells[jm].strip():
            model = cells[jm].strip().lower()
            if model not in ("grm", "gpcm"):
                raise InvalidDataError(f"{name} line {line}, column 'model': {cells[jm].strip()!r} is not a model; "
                                       f"use grm or gpcm", file=path, line=line, column="model")
        stem = restore_cell(cells[js]).strip() if js is not None and cells[js].strip() else None
        content = [t.strip() for t in restore_cell(cells[jc]).split(";") if t.strip()] if jc is not None else []
        out.append(_Row(line, iid, a, thr, model, stem, content))
    return out


def _id_column(header, param_names) -> int | None:
    """Index of a leading row-name column (R's write.csv writes an empty header for it)."""
    h = header[0].strip().lower()
    if h in param_names:
        return None
    return 0


def _row_name(cells, jid, n, header, name, line, path) -> str:
    """The item id of a row: its row-name cell, or ``I<n>`` when the table has no row names."""
    iid = restore_cell(cells[jid]).strip() if jid is not None else f"I{n}"
    if not iid:
        raise InvalidDataError(f"{name} line {line}, column 1: empty item name", file=path, line=line,
                               column=header[0])
    return iid


def _read_mirt(header, rows, name, path):
    lower = [h.lower() for h in header]
    jid = _id_column(lower, {"a", "a1", "b", "b1", "g", "u"})
    acol = "a" if "a" in lower else ("a1" if "a1" in lower else None)
    if acol is None:
        raise InvalidDataError(f"{name} line 1: the mirt layout needs a column 'a' (coef(mod, IRTpars=TRUE, "
                               f"simplify=TRUE)$items written as CSV); got {', '.join(header)}", file=path, line=1)
    if "a2" in lower:
        raise InvalidDataError(f"{name} line 1: column 'a2' means a multidimensional model; cat-prom banks are "
                               f"unidimensional", file=path, line=1, column="a2")
    bcols = _numbered(lower, "b")
    jb = lower.index("b") if "b" in lower else None
    jg = lower.index("g") if "g" in lower else None
    ju = lower.index("u") if "u" in lower else None
    if not bcols and jb is None:
        raise InvalidDataError(f"{name} line 1: the mirt layout needs threshold columns b1, b2, ... (or b for 2PL "
                               f"items)", file=path, line=1)
    known = {acol, "b", "g", "u"} | {h for _, h in bcols}
    for j, h in enumerate(lower):
        if j != jid and h not in known:
            raise InvalidDataError(f"{name} line 1, column {j + 1} ({header[j]!r}): not a column of mirt's "
                                   f"IRTpars coefficients (a, b1..bk; a, b, g, u for 2PL items)", file=path,
                                   line=1, column=header[j])
    ja = lower.index(acol)
    out = []
    for n, (line, cells) in enumerate(rows, start=1):
        iid = _row_name(cells, jid, n, header, name, line, path)
        a = number(cells[ja], name, line, header[ja], path)
        thr = _thresholds([cells[j] for j, _ in bcols], [header[j] for j, _ in bcols], name, line, path)
        if jb is not None and not is_missing(cells[jb]):
            if thr:
                raise InvalidDataError(f"{name} line {line}: item {iid!r} has both b and b1..bk", file=path,
                                       line=line, column="b")
            thr = [number(cells[jb], name, line, "b", path)]
            for j, want in ((jg, 0.0), (ju, 1.0)):
                if j is not None and not is_missing(cells[j]) and number(cells[j], name, line, header[j], path) != want:
                    raise InvalidDataError(f"{name} line {line}, column {header[j]!r}: item {iid!r} has "
                                           f"{header[j]} = {cells[j].strip()}; only 2PL items (g = 0, u = 1) are "
                                           f"supported", file=path, line=line, column=header[j])
        if not thr:
            raise InvalidDataError(f"{name} line {line}: item {iid!r} has no thresholds", file=path, line=line)
        out.append(_Row(line, iid, a, thr))
    return out


def _read_catr(header, rows, name, path, model):
    lower = [h.lower() for h in header]
    for bad, which in (("bj", "MGRM"), ("lambdaj", "RSM"), ("alpha1", "NRM")):
        if bad in lower:
            raise InvalidDataError(f"{name} line 1: column {bad!r} is catR's {which} layout, which cat-prom does not "
                                   f"support; use GRM (alphaj, betaj1..) or GPCM (alphaj, deltaj1..)", file=path,
                                   line=1, column=bad)
    jgroup = lower.index("group") if "group" in lower else None
    betas = _numbered(lower, "betaj")
    deltas = _numbered(lower, "deltaj")
    if betas and deltas:
        raise InvalidDataError(f"{name} line 1: both betaj and deltaj columns; a catR matrix holds one model",
                               file=path, line=1)
    if betas or deltas:
        detected = "grm" if betas else "gpcm"
        if model is not None and model != detected:
            raise InvalidDataError(f"{name} line 1: the columns ({'betaj' if betas else 'deltaj'}1, ...) are catR's "
                                   f"{'GRM' if betas else 'GPCM'} layout, but the model given is {model!r}",
                                   file=path, line=1)
        model = detected
        tcols = betas or deltas
        ja = lower.index("alphaj") if "alphaj" in lower else None
        if ja is None and betas:
            raise InvalidDataError(f"{name} line 1: catR's GRM layout needs an alphaj column", file=path, line=1)
        used = {j for j, _ in tcols} | ({ja} if ja is not None else set()) | ({jgroup} if jgroup is not None else set())
        rest = [j for j in range(len(header)) if j not in used]
        if len(rest) > 1 or (rest and rest[0] != 0):
            j = rest[-1]
            raise InvalidDataError(f"{name} line 1, column {j + 1} ({header[j]!r}): not a column of catR's GRM/GPCM "
                                   f"matrix (alphaj, betaj1.. or deltaj1.., Group)", file=path, line=1,
                                   column=header[j])
        jid = rest[0] if rest else None
    else:  # unnamed matrix: V1, V2, ... or a header of anything; read positionally
        data_cols = [j for j in range(len(header)) if j != jgroup]
        jid = 0 if header[0].strip() in ("", "id", "item_id") else None
        if jid is not None:
            data_cols = data_cols[1:]
        if len(data_cols) < 2:
            raise InvalidDataError(f"{name} line 1: a catR matrix needs alphaj and at least one threshold column",
                                   file=path, line=1)
        ja = data_cols[0]
        tcols = [(j, header[j]) for j in data_cols[1:]]
        model = model or "grm"
    out = []
    for n, (line, cells) in enumerate(rows, start=1):
        iid = _row_name(cells, jid, n, header, name, line, path)
        a = 1.0 if ja is None else number(cells[ja], name, line, header[ja], path)
        thr = _thresholds([cells[j] for j, _ in tcols], [h for _, h in tcols], name, line, path)
        if not thr:
            raise InvalidDataError(f"{name} line {line}: item {iid!r} has no thresholds", file=path, line=line)
        content = [restore_cell(cells[jgroup]).strip()] if jgroup is not None and cells[jgroup].strip() else []
        out.append(_Row(line, iid, a, thr, model, None, content))
    return out, model


def _ids_from_path(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-")
    return stem or "bank"


def read_params_csv(path: str | os.PathLike, format: str = "csv", *, model: str | None = None,
                    bank_id: str | None = None, name: str | None = None,
                    direction: str = "higher_is_worse", labels: Sequence[str] | None = None,
                    values: Sequence | None = None, start_item: str | None = None) -> ItemBank:
    """Read an item-parameter table and build a validated bank.

    Parameters
    ----------
    path : the CSV file
    format : ``"csv"``, ``"mirt"`` or ``"catr"`` (see the module docstring)
    model : ``"grm"`` or ``"gpcm"``, the model of items whose layout does not say
        (default ``"grm"``; catR's column names say it themselves)
    bank_id, name : of the new bank (default: the file name)
    direction : ``"higher_is_worse"`` (symptoms) or ``"higher_is_better"`` (function)
    labels : one label per category, shared by every item (default ``"0"``, ``"1"``, ...)
    values : one response value per category, shared by every item (default 0..k-1)
    start_item : the bank's fixed start item

    Returns
    -------
    ItemBank, whose provenance records the import.
    """
    path = os.fspath(path)
    fname = os.path.basename(path)
    fmt = (format or "csv").lower()
    if fmt not in FORMATS:
        raise InvalidDataError(f"unknown parameter format {format!r}; use one of {', '.join(FORMATS)}")
    if model is not None:
        model = model.lower()
        if model not in ("grm", "gpcm"):
            raise InvalidDataError(f"unknown model {model!r}; use grm or gpcm")
    if direction not in DIRECTIONS:
        raise InvalidDataError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    header, rows = read_csv_rows(path)
    check_unique_header(header, fname, path)
    try:
        if fmt == "csv":
            parsed = _read_cat_prom_csv(header, rows, fname, path)
        elif fmt == "mirt":
            parsed = _read_mirt(header, rows, fname, path)
        else:
            parsed, model = _read_catr(header, rows, fname, path, model)
    except InvalidDataError as e:
        raise e.with_source(fname, " " if e.message.startswith("line") else ": ")
    if not parsed:
        raise InvalidDataError(f"{fname}: no items (the file has a header but no rows)", file=path)
    default_model = model or "grm"
    seen = {}
    for r in parsed:
        if r.id in seen:
            raise InvalidDataError(f"{fname} line {r.line}: duplicate item id {r.id!r} (also on line {seen[r.id]})",
                                   file=path, line=r.line)
        seen[r.id] = r.line
        if r.model is None:
            r.model = default_model
    models = {r.model for r in parsed}
    bank_model = models.pop() if len(models) == 1 else "mixed"
    items = []
    for r in parsed:
        k = len(r.thr) + 1
        for what, seq in (("--labels", labels), ("--values", values)):
            if seq is not None and len(seq) != k:
                raise InvalidDataError(f"{fname} line {r.line}: item {r.id!r} has {k} categories but {what} gives "
                                       f"{len(seq)}; give one per category", file=path, line=r.line)
        vals = list(values) if values is not None else list(range(k))
        labs = list(labels) if labels is not None else [str(v) for v in vals]
        d = {"id": r.id, "stem": r.stem or r.id, "options": [{"value": v, "label": l} for v, l in zip(vals, labs)],
             "a": r.a, "thresholds": r.thr}
        if bank_model == "mixed":
            d["model"] = r.model
        if r.content:
            d["content"] = list(r.content)
        items.append(d)
    from .. import __version__
    bid = bank_id or _ids_from_path(path)
    doc = {
        "format": BANK_FORMAT, "id": bid, "name": name or bid, "version": "1", "domain": bid,
        "model": bank_model, "metric": {"t_mean": 50.0, "t_sd": 10.0, "direction": direction},
        "severity_bands": [], "start_item": start_item, "demo": False, "items": items,
        "provenance": {"imported_from": {"format": fmt, "file": fname}, "software": {"cat-prom": __version__}},
    }
    try:
        return ItemBank.from_dict(doc, source=fname)
    except Exception as e:
        # point at the CSV line of the item the bank validation complained about
        iid = getattr(e, "fields", {}).get("item_id") if hasattr(e, "fields") else None
        if iid in seen and isinstance(e, CatPromError):
            e.reword(e.message.replace(f"{fname}: ", f"{fname} line {seen[iid]}: ", 1))
        raise


def _fmt(x: float) -> str:
    return repr(float(x))


def write_params(bank: ItemBank, path, format: str = "csv") -> list[str]:
    """Write the bank's item parameters as a CSV table in ``format`` to ``path`` (or an open text stream).

    Only parameters (and, for ``csv``, stems, models and content tags) are
    written; response options, metric and provenance stay in the bank file.

    Returns
    -------
    list of str : warnings about information the layout cannot carry.
    """
    fmt = (format or "csv").lower()
    if fmt not in FORMATS:
        raise InvalidDataError(f"unknown parameter format {format!r}; use one of {', '.join(FORMATS)}")
    kmax1 = bank.kmax - 1
    warnings: list[str] = []
    rows: list[list[str]] = []
    models = {it.model for it in bank.items}
    if fmt == "csv":
        has_content = any(it.content for it in bank.items)
        header = ["item_id", "a", *[f"b{j + 1}" for j in range(kmax1)], "model", "stem"] + (["content"] if has_content else [])
        for it in bank.items:
            thr = [_fmt(t) for t in it.thresholds] + [""] * (kmax1 - len(it.thresholds))
            row = [it.id, _fmt(it.a), *thr, it.model, it.stem]
            if has_content:
                row.append(";".join(it.content))
            rows.append(row)
    elif fmt == "mirt":
        if len(models) > 1:
            warnings.append("the bank mixes GRM and GPCM items; mirt's coefficient table does not record each "
                            "item's model (itemtype), so keep it alongside the file")
        header = ["", "a", *[f"b{j + 1}" for j in range(kmax1)]]
        for it in bank.items:
            rows.append([it.id, _fmt(it.a), *[_fmt(t) for t in it.thresholds], *["NA"] * (kmax1 - len(it.thresholds))])
    else:
        if len(models) > 1:
            raise InvalidDataError(f"bank {bank.id!r} mixes GRM and GPCM items; a catR item matrix holds one model. "
                                   f"Export the csv layout instead")
        prefix = "betaj" if models == {"grm"} else "deltaj"
        groups = all(len(it.content) == 1 for it in bank.items)
        if any(it.content for it in bank.items) and not groups:
            warnings.append("content tags not written: catR's Group column holds exactly one group per item")
        header = ["", "alphaj", *[f"{prefix}{j + 1}" for j in range(kmax1)]] + (["Group"] if groups else [])
        for it in bank.items:
            row = [it.id, _fmt(it.a), *[_fmt(t) for t in it.thresholds], *["NA"] * (kmax1 - len(it.thresholds))]
            if groups:
                row.append(it.content[0])
            rows.append(row)
    if hasattr(path, "write"):  # an open text stream
        w = csv_writer(path)
        w.writerow(header)
        w.writerows(rows)
        return warnings
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv_writer(fh)
            w.writerow(header)
            w.writerows(rows)
    except OSError as e:
        raise InvalidDataError(f"cannot write {os.fspath(path)!r}: {e.strerror}") from None
    return warnings


# --------------------------------------------------------------------------- item wording
def read_stems_csv(path: str | os.PathLike, item_ids: Sequence[str]) -> dict[str, str]:
    """Item wording for a calibration: a CSV with header ``item_id,stem``, one line per item.

    Parameters
    ----------
    path : the CSV file
    item_ids : the items being calibrated; a stem for any other id is an error

    Returns
    -------
    dict mapping item id to stem (items without a line are absent).
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    header, rows = read_csv_rows(path)
    if [h.lower() for h in header] != ["item_id", "stem"]:
        raise InvalidDataError(f"{name} line 1: the header must be item_id,stem (got {','.join(header)})",
                               file=path, line=1)
    known = set(item_ids)
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for line, (iid, stem) in rows:
        iid, stem = iid.strip(), stem.strip()
        if iid not in known:
            raise InvalidDataError(f"{name} line {line}, column 'item_id': {iid!r} is not an item column of the "
                                   f"response file; stems must name items of the calibration", file=path, line=line,
                                   column="item_id")
        if iid in seen:
            raise InvalidDataError(f"{name} line {line}, column 'item_id': duplicate item {iid!r} (also on line "
                                   f"{seen[iid]})", file=path, line=line, column="item_id")
        if not stem:
            raise InvalidDataError(f"{name} line {line}, column 'stem': empty stem for item {iid!r}", file=path,
                                   line=line, column="stem")
        seen[iid] = line
        out[iid] = stem
    return out

"""Response data: the one reader of response CSVs, for scoring, simulation and calibration.

The layout is the same everywhere: a header ``id,<item ids...>``, one row per
person, one cell per item, empty (or ``NA``) for an item the person was not
asked or did not answer. What the cells *hold* depends on what the file is for,
and the reader turns them into the engine's 0-based categories accordingly:

* **for a bank** (``bank=``; scoring, post-hoc simulation, item fit): every
  column is an item of the bank and each cell one of that item's response
  *values*, as listed in the bank's options (``3`` and ``3.0`` alike);
* **for a calibration** (no ``bank``): the columns are the items to calibrate
  and the cells hold raw response values, coded into categories

  - by position in ``values`` (e.g. ``never,rarely,sometimes,often,always``), or
  - as integers: ``0..k-1`` are the categories as they stand and ``1..k`` are
    shifted down by one; the smallest value in the file decides, and
    :attr:`ResponseTable.coding` records which rule was used;

  columns of items of an ``anchor`` bank hold that bank's response values.

Every error names the file, the 1-based line and the column, and says how to
fix it. Reading is vectorised: each distinct cell text is coded once per column,
then one gather builds the ``(n_persons, n_items)`` table.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidDataError
from .csvfile import MISSING, check_unique_header, person_ids, read_csv_rows

__all__ = ["ResponseTable", "read_responses", "read_responses_csv", "MAX_RAW_CATEGORIES"]

#: Most categories an item may have when they are inferred from integer cells.
MAX_RAW_CATEGORIES = 20


@dataclass(frozen=True, eq=False)
class ResponseTable:
    """Who answered what, as 0-based categories.

    Attributes
    ----------
    person_ids : tuple of str, length n_persons
    item_ids : tuple of str, length n_items
        In the order of the file's columns.
    categories : ndarray, shape (n_persons, n_items)
        0-based categories as floats, NaN where not answered.
    coding : dict
        How the cells were turned into categories (``rule``, ``values``, ``anchor_items``);
        a calibrated bank records it in its provenance.
    source : str or None
        The file name, for messages and provenance.
    """

    person_ids: tuple
    item_ids: tuple
    categories: np.ndarray
    coding: dict = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def from_array(cls, categories: Any, item_ids: Sequence[str] | None = None,
                   person_ids: Sequence[str] | None = None, *, source: str | None = None) -> "ResponseTable":
        """A table of 0-based categories given in Python (NaN or -1 = not answered).

        Item ids default to ``I1..In`` and person ids to ``1..N``.
        """
        try:
            x = np.array(categories, dtype=float)
        except (TypeError, ValueError):
            raise InvalidDataError("categories must be a numeric array of shape (n_persons, n_items)") from None
        if x.ndim != 2:
            raise InvalidDataError(f"categories must have shape (n_persons, n_items); got {x.shape}")
        x[x == -1] = np.nan
        n, m = x.shape
        items = tuple(str(i) for i in item_ids) if item_ids is not None else tuple(f"I{j + 1}" for j in range(m))
        persons = tuple(str(p) for p in person_ids) if person_ids is not None else tuple(str(p + 1) for p in range(n))
        if len(items) != m or len(persons) != n:
            raise InvalidDataError(f"categories have shape {x.shape} but {len(persons)} person ids and {len(items)} "
                                   f"item ids were given")
        if len(set(items)) != m:
            raise InvalidDataError("item ids must be unique")
        return cls(persons, items, x, {"rule": "0-based categories given in Python"}, source)

    @property
    def shape(self) -> tuple[int, int]:
        return self.categories.shape

    def for_bank(self, bank) -> np.ndarray:
        """The categories aligned with ``bank``'s items, shape ``(n_persons, bank.n_items)``.

        Items of the bank absent from the table are NaN; every column must be an item of the bank.
        """
        x = np.full((len(self.person_ids), bank.n_items), np.nan)
        x[:, [bank.index(i) for i in self.item_ids]] = self.categories
        return x


# --------------------------------------------------------------------------- cell coding
def _as_category(lookup: dict, cell: str):
    """Category of a cell via a value -> category lookup keyed by text ("3" and "3.0" alike); None if absent."""
    k = lookup.get(cell)
    if k is None:
        try:
            f = float(cell)
            k = lookup.get(str(int(f))) if f.is_integer() else None
        except (ValueError, OverflowError):
            pass
    return k


def _values_coder(values: Sequence, what: str):
    """A cell coder for a list of response values in category order."""
    lookup = {str(v): k for k, v in enumerate(values)}

    def code(cell: str):
        k = _as_category(lookup, cell)
        if k is not None:
            return k, None
        if cell in MISSING:
            return np.nan, None
        return None, f"{cell!r} is not {what}"
    return code


def _integer_coder(cell: str):
    """Cells of a calibration without ``values``: whole numbers (shifted to 0-based later)."""
    if cell in MISSING:
        return np.nan, None
    try:
        f = float(cell)
        if math.isfinite(f) and f.is_integer():
            return int(f), None
    except ValueError:
        pass
    return None, (f"{cell!r} is not a whole number; cells hold integer response values (0..k-1 or 1..k), or the "
                  f"values listed by --values; leave a missing answer empty or NA")


def _code_cells(rows, coders) -> tuple[np.ndarray, tuple | None, int]:
    """Code every cell of ``rows`` (cells after the id) with its column's coder.

    Returns the ``(n_rows, n_cols)`` float table, the ``(row, col, message)`` of the first invalid
    cell in reading order (or None) and the number of invalid cells.
    """
    n, m = len(rows), len(coders)
    flat = list(chain.from_iterable(cells[1:] for _, cells in rows))
    texts = {c: i for i, c in enumerate(set(flat))}  # each distinct text once
    inv = np.fromiter(map(texts.__getitem__, flat), dtype=np.intp, count=n * m).reshape(n, m)
    uniq = list(texts)
    cols = np.broadcast_to(np.arange(m), (n, m))
    present = np.zeros((m, len(uniq)), dtype=bool)
    present[cols, inv] = True
    table = np.full((m, len(uniq)), np.nan)
    bad = np.zeros((m, len(uniq)), dtype=bool)
    messages: dict[tuple[int, int], str] = {}
    for c, code in enumerate(coders):
        for u in np.flatnonzero(present[c]).tolist():
            k, msg = code(uniq[u].strip())
            if msg is None:
                table[c, u] = k
            else:
                bad[c, u] = True
                messages[(c, u)] = msg
    if not messages:
        return table[cols, inv], None, 0
    bad_cells = bad[cols, inv]
    r, c = divmod(int(np.argmax(bad_cells)), m)  # row-major: the first invalid cell in reading order
    return table[cols, inv], (r, c, messages[(c, int(inv[r, c]))]), int(bad_cells.sum())


def _integer_rule(X, new_cols, item_ids, lines, name, path) -> dict:
    """Shift integer cells of ``new_cols`` to 0-based categories (in place); the coding record."""
    sub = X[:, new_cols]
    lo, hi = (0, 0) if np.isnan(sub).all() else (int(np.nanmin(sub)), int(np.nanmax(sub)))
    if lo not in (0, 1):
        r, c = np.argwhere(sub == lo)[0]
        c = new_cols[c]
        raise InvalidDataError(
            f"{name} line {lines[r]}, column {item_ids[c]!r}: response value {lo}; without --values the cells "
            f"must be categories 0..k-1 or values 1..k (the smallest value in the file decides). Pass "
            f"--values to list the response values in order, and leave missing answers empty or NA "
            f"(not {lo})", file=path, line=lines[r], column=item_ids[c])
    k = hi - lo + 1
    if k > MAX_RAW_CATEGORIES:
        r, c = np.argwhere(sub == hi)[0]
        c = new_cols[c]
        raise InvalidDataError(f"{name} line {lines[r]}, column {item_ids[c]!r}: response value {hi} means "
                               f"{k} categories; at most {MAX_RAW_CATEGORIES} are supported",
                               file=path, line=lines[r], column=item_ids[c])
    X[:, new_cols] -= lo
    return {"rule": ("cells are 0-based categories 0..k-1" if lo == 0
                     else "cells are response values 1..k; category = value - 1"),
            "values": list(range(lo, hi + 1))}


# --------------------------------------------------------------------------- the reader
def _check_header(header, name, path, bank):
    if header[0].lower() != "id":
        raise InvalidDataError(f"{name} line 1, column 1: the first column must be 'id' (the person id), got "
                               f"{header[0]!r}; the header is id,<item ids...>", file=path, line=1, column=header[0])
    check_unique_header(header, name, path)
    item_ids = header[1:]
    if bank is not None:
        known = set(bank.ids)
        for j, h in enumerate(item_ids, start=2):
            if h not in known:
                low = {i.lower(): i for i in bank.ids}
                hint = (f" (did you mean {low[h.lower()]!r}? item ids are case-sensitive)" if h.lower() in low
                        else "")
                raise InvalidDataError(f"{name} line 1, column {j} ({h!r}): {h!r} is not an item of bank "
                                       f"{bank.id!r}{hint}", file=path, line=1, column=h)
        return item_ids
    for j, h in enumerate(item_ids, start=2):
        if not h:
            raise InvalidDataError(f"{name} line 1, column {j}: empty item id; every item column needs a name",
                                   file=path, line=1, column=j)
    if not item_ids:
        raise InvalidDataError(f"{name} line 1: no item columns; the header is id,<item ids...>", file=path, line=1)
    return item_ids


def read_responses(path: str | os.PathLike, *, bank=None, values: Sequence | None = None,
                   anchor=None) -> ResponseTable:
    """Read a response CSV into 0-based categories.

    Parameters
    ----------
    path : the CSV file (header ``id,<item ids...>``)
    bank : ItemBank, optional
        The cells hold this bank's response values; every column must be one of its items.
        A file with a header and no rows gives an empty table.
    values : sequence, optional
        Without ``bank``: the response values in category order, shared by every item.
    anchor : ItemBank, optional
        Without ``bank``: columns of this bank's items hold its response values
        (fixed-anchor calibration).

    Returns
    -------
    ResponseTable

    Raises
    ------
    InvalidDataError
        naming the file, the 1-based line and the column: a bad header, an unknown or
        duplicate column, a ragged row, malformed CSV, an empty person id, or a cell
        that is not a response value (with the number of further invalid cells).
    """
    if bank is not None and (values is not None or anchor is not None):
        raise InvalidDataError("read_responses: give either bank (cells hold its values) or values/anchor "
                               "(raw cells for a calibration), not both")
    path = os.fspath(path)
    name = os.path.basename(path)
    header, rows = read_csv_rows(path)
    item_ids = _check_header(header, name, path, bank)
    if not rows and bank is None:
        raise InvalidDataError(f"{name}: no persons (the file has a header but no rows)", file=path)
    pids = person_ids(rows, name, path)
    if bank is not None:
        items = [bank.item(h) for h in item_ids]
        coders = [_values_coder(it.values, f"a response value of item {it.id!r}, which takes "
                                           f"{', '.join(str(v) for v in it.values)}") for it in items]
    else:
        anchor_ids = set(anchor.ids) if anchor is not None else set()
        raw = (_values_coder(values, f"one of the response values given by --values "
                                     f"({', '.join(str(v) for v in values)})") if values is not None
               else _integer_coder)
        coders = [_values_coder(anchor.item(h).values, f"a response value of anchor item {h!r} in bank "
                                                       f"{anchor.id!r}, which takes "
                                                       f"{', '.join(str(v) for v in anchor.item(h).values)}")
                  if h in anchor_ids else raw for h in item_ids]
    if not rows:
        return ResponseTable(tuple(pids), tuple(item_ids), np.full((0, len(item_ids)), np.nan), {}, name)
    X, first_bad, n_bad = _code_cells(rows, coders)
    lines = [line for line, _ in rows]
    if first_bad is not None:
        r, c, msg = first_bad
        hint = "; leave the cell empty for a missing answer" if bank is not None else ""
        more = f" ({n_bad - 1} more invalid cell{'s' if n_bad > 2 else ''} in the file)" if n_bad > 1 else ""
        extra = {"item_id": item_ids[c]} if bank is not None else {}
        raise InvalidDataError(f"{name} line {lines[r]}, column {item_ids[c]!r}: {msg}{hint}{more}", file=path,
                               line=lines[r], column=item_ids[c], **extra)
    coding: dict = {}
    if bank is None:
        new_cols = [c for c, h in enumerate(item_ids) if h not in anchor_ids]
        if values is not None:
            coding = {"rule": "cells hold the response values given by --values; category = position in that list",
                      "values": list(values)}
        elif new_cols:
            coding = _integer_rule(X, new_cols, item_ids, lines, name, path)
        if anchor_ids & set(item_ids):
            coding["anchor_items"] = f"cells of anchor items hold bank {anchor.id!r}'s response values"
    else:
        coding = {"rule": f"cells hold the response values of bank {bank.id!r}"}
    return ResponseTable(tuple(pids), tuple(item_ids), X, coding, name)


def read_responses_csv(path: str | os.PathLike, bank) -> tuple[list[str], np.ndarray]:
    """Read a response file whose cells hold ``bank``'s response values (the layout ``cat-prom score`` reads).

    The header is ``id`` followed by item ids of ``bank`` (any subset, any order).

    Returns
    -------
    ids : list of str, one per person (row order)
    categories : ndarray, shape (n_persons, bank.n_items)
        0-based categories, NaN for unanswered items and items absent from the file.
    """
    table = read_responses(path, bank=bank)
    return list(table.person_ids), table.for_bank(bank)

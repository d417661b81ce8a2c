"""The CSV layer shared by every file cat-prom reads: rows with line numbers, and precise errors.

Every reader in :mod:`cat_prom.io` goes through :func:`read_csv_rows`, so that a
malformed file, a ragged row, a duplicated column or a non-number is reported
the same way everywhere: the file name, the 1-based line number and the column,
and how to fix it (``resp.csv line 3: has 2 cells but the header (line 1) has 3
columns; ...``).
"""
from __future__ import annotations

import csv
import math
import os

from ..errors import InvalidDataError

__all__ = ["MISSING", "read_csv_rows", "check_unique_header", "number", "is_missing", "person_ids"]

#: Cell texts that mean "no value" (an unanswered item, an absent threshold).
MISSING = frozenset({"", "NA", "na", "NaN", "nan", "."})


def read_csv_rows(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line_number, cells)`` rows of a CSV file; blank lines are skipped.

    Raises :class:`~cat_prom.errors.InvalidDataError` for an unreadable or malformed
    file, a missing header, or a row with a different number of cells than the header.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise InvalidDataError(f"cannot read {path!r}: {e.strerror}", file=path) from None
    rows: list[tuple[int, list[str]]] = []
    header = None
    try:
        with fh:
            reader = csv.reader(fh, strict=True)
            start = 1
            for cells in reader:
                line = start
                start = reader.line_num + 1
                if not cells or all(not c.strip() for c in cells) and len(cells) <= 1:
                    continue
                if header is None:
                    header = [c.strip() for c in cells]
                    header_line = line
                    n_cols = len(header)
                    continue
                if len(cells) != n_cols:
                    raise InvalidDataError(
                        f"{name} line {line}: has {len(cells)} cells but the header (line {header_line}) has "
                        f"{n_cols} columns; every row needs one cell per column (leave a cell empty for a "
                        f"missing value)", file=path, line=line)
                rows.append((line, cells))
    except csv.Error as e:
        raise InvalidDataError(f"{name} line {reader.line_num}: malformed CSV ({e})", file=path,
                               line=reader.line_num) from None
    except UnicodeDecodeError:
        raise InvalidDataError(f"{name} is not UTF-8 text; save it as UTF-8 CSV", file=path) from None
    if header is None:
        raise InvalidDataError(f"{name} is empty; it needs a header line", file=path)
    return header, rows


def check_unique_header(header: list[str], name: str, path: str) -> None:
    """Raise :class:`InvalidDataError` naming the first column name that appears twice."""
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        if h in seen:
            raise InvalidDataError(f"{name} line 1, column {j + 1} ({h!r}): duplicate column name (also column "
                                   f"{seen[h] + 1}); each column must appear once", file=path, line=1, column=h)
        seen[h] = j


def number(cell: str, name: str, line: int, col: str, path: str) -> float:
    """The finite number in ``cell``, or an :class:`InvalidDataError` naming line and column."""
    try:
        x = float(cell)
    except ValueError:
        raise InvalidDataError(f"{name} line {line}, column {col!r}: {cell.strip()!r} is not a number", file=path,
                               line=line, column=col) from None
    if not math.isfinite(x):
        raise InvalidDataError(f"{name} line {line}, column {col!r}: {cell.strip()!r} is not a finite number",
                               file=path, line=line, column=col)
    return x


def is_missing(cell: str) -> bool:
    """Whether a cell is empty or one of the :data:`MISSING` markers."""
    return cell.strip() in MISSING


def person_ids(rows: list[tuple[int, list[str]]], name: str, path: str) -> list[str]:
    """The first cell of each ``(line, cells)`` row: person ids, none of them empty."""
    ids = []
    for line, cells in rows:
        pid = cells[0].strip()
        if not pid:
            raise InvalidDataError(f"{name} line {line}, column 'id': empty person id", file=path, line=line,
                                   column="id")
        ids.append(pid)
    return ids

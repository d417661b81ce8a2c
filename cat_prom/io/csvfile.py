"""The CSV layer shared by every file cat-prom reads or writes: rows with line numbers, precise
errors, and output cells that a spreadsheet cannot run.

Every reader in :mod:`cat_prom.io` goes through :func:`read_csv_rows`, so that a
malformed file, a ragged row, a duplicated column or a non-number is reported
the same way everywhere: the file name, the 1-based line number and the column,
and how to fix it (``resp.csv line 3: has 2 cells but the header (line 1) has 3
columns; ...``). It accepts UTF-8 with or without a byte-order mark and any line
ending (LF, CRLF, CR), and rejects other encodings (naming the first bad byte and its
line, or UTF-16), NUL bytes, unclosed quotes, cells longer than ``csv.field_size_limit()``
(131072 characters) and more than :data:`MAX_COLUMNS` columns.

Every CSV cat-prom writes goes through :func:`csv_writer`,
which applies OWASP's rule against CSV (formula) injection: a text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with a leading ``'``,
so that Excel or LibreOffice shows it as text instead of running it (``=HYPERLINK(...)``
as a person id or an item stem). A cell that is a plain number such as ``-1.25`` or
``-inf`` is left as it is: a spreadsheet reads it as a number and runs nothing.
:func:`restore_cell` removes that quote again where cat-prom reads its own output back
(``bank export`` then ``bank import``).
"""
from __future__ import annotations

import csv
import io
import math
import os
import re

from ..errors import InvalidDataError
from ..jsonfile import NotUTF8, decode_utf8, line_col

__all__ = ["MISSING", "MAX_COLUMNS", "FORMULA_START", "read_csv_rows", "check_unique_header",
           "number", "cell_text", "is_missing", "person_ids", "neutralise_cell", "needs_neutralising", "restore_cell",
           "csv_writer"]

#: Cell texts that mean "no value" (an unanswered item, an absent threshold).
MISSING = frozenset({"", "NA", "na", "NaN", "nan", "."})
#: Most columns a CSV may have: a person id and the 20000 items a bank may hold.
MAX_COLUMNS = 20001
#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|Infinity)")


def _decode(data: bytes, name: str, path: str) -> str:
    """UTF-8 text of a CSV file (a byte-order mark skipped), or an error naming the first bad byte."""
    try:
        return decode_utf8(data)
    except NotUTF8 as e:
        if e.encoding:
            raise InvalidDataError(f"{name} is {e.encoding} text (Excel's \"Unicode text\"); save it as \"CSV UTF-8\"",
                                   file=path) from None
        raise InvalidDataError(f"{name} line {e.line}: not UTF-8 text (byte 0x{e.byte:02x}); save it as UTF-8 CSV",
                               file=path, line=e.line) from None


def _nul_error(text: str, name: str, path: str) -> InvalidDataError:
    pos = text.index("\x00")
    line, column = line_col(text, pos)
    try:
        before = next(csv.reader([text[pos - column + 1:pos]]), [])
        col = f", column {max(len(before), 1)}"
    except csv.Error:
        col = ""
    return InvalidDataError(f"{name} line {line}{col}: a NUL byte (\\x00) in the file; it is damaged or not a "
                            f"text CSV (remove the byte, or export the data again as CSV UTF-8)",
                            file=path, line=line)


def _check_separator(text: str, name: str, path: str) -> None:
    """A header line with semicolons or tabs and no comma: a spreadsheet's "CSV" in another dialect."""
    for line, first in enumerate(io.StringIO(text, newline=None), start=1):
        if first.strip():
            if "," not in first and (";" in first or "\t" in first):
                sep = "';'" if ";" in first else "tabs"
                raise InvalidDataError(f"{name} line {line}: the cells are separated by {sep}; cat-prom reads "
                                       f"comma-separated files (in Excel: Save As, CSV UTF-8 (Comma delimited))",
                                       file=path, line=line)
            return


def read_csv_rows(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line_number, cells)`` rows of a CSV file; blank lines are skipped.

    Raises :class:`~cat_prom.errors.InvalidDataError` for an unreadable or malformed
    file (see the module docstring), a missing header, or a row with a different number
    of cells than the header.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        reason = "it is a folder" if isinstance(e, IsADirectoryError) else e.strerror
        raise InvalidDataError(f"cannot read {path!r}: {reason}", file=path) from None
    text = _decode(data, name, path)
    del data
    if "\x00" in text:
        raise _nul_error(text, name, path)
    _check_separator(text, name, path)
    rows: list[tuple[int, list[str]]] = []
    header = None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        start = 1
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not cells or all(not c.strip() for c in cells) and len(cells) <= 1:
                continue
            if header is None:
                if len(cells) > MAX_COLUMNS:
                    raise InvalidDataError(f"{name} line {line}: {len(cells)} columns; at most {MAX_COLUMNS} are "
                                           f"read (a person id and {MAX_COLUMNS - 1} items)", file=path, line=line)
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
        hint = (f"a cell longer than {csv.field_size_limit()} characters, usually a quote that is never closed"
                if "field larger" in str(e) else f"malformed CSV ({e})")
        raise InvalidDataError(f"{name} line {reader.line_num}: {hint}", file=path, line=reader.line_num) from None
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
        raise InvalidDataError(f"{name} line {line}, column {col!r}: {cell_text(cell)} is not a number", file=path,
                               line=line, column=col) from None
    if not math.isfinite(x):
        raise InvalidDataError(f"{name} line {line}, column {col!r}: {cell_text(cell)} is not a finite number",
                               file=path, line=line, column=col)
    return x


def cell_text(cell: str, limit: int = 40) -> str:
    """A cell for an error message: quoted, stripped, and cut to ``limit`` characters (a 5,000-digit number)."""
    cell = cell.strip()
    return repr(cell) if len(cell) <= limit else f"{cell[:limit - 3]!r}... ({len(cell)} characters)"


def is_missing(cell: str) -> bool:
    """Whether a cell is empty or one of the :data:`MISSING` markers."""
    return cell.strip() in MISSING


def person_ids(rows: list[tuple[int, list[str]]], name: str, path: str) -> list[str]:
    """The first cell of each ``(line, cells)`` row: person ids, none of them empty and none twice."""
    ids = [cells[0].strip() for _, cells in rows]
    if all(ids) and len(set(ids)) == len(ids):
        return ids
    seen: dict[str, int] = {}
    for (line, _), pid in zip(rows, ids):
        if not pid:
            raise InvalidDataError(f"{name} line {line}, column 'id': empty person id", file=path, line=line,
                                   column="id")
        if pid in seen:
            raise InvalidDataError(f"{name} line {line}, column 'id': person id {pid!r} also on line {seen[pid]}; "
                                   f"each person needs one row with a unique id (merge the rows or rename one)",
                                   file=path, line=line, column="id")
        seen[pid] = line
    return ids  # pragma: no cover - the fast path above returns when there is no problem


# --------------------------------------------------------------------------- writing
def needs_neutralising(cell) -> bool:
    """Whether ``cell`` is text a spreadsheet would read as a formula (see the module docstring)."""
    return type(cell) is str and cell[:1] in FORMULA_START and _NUMBER.fullmatch(cell) is None


def neutralise_cell(cell):
    """``cell`` with a leading ``'`` when :func:`needs_neutralising`; anything else unchanged."""
    return "'" + cell if needs_neutralising(cell) else cell


def restore_cell(cell: str) -> str:
    """Undo :func:`neutralise_cell` on a cell read back: ``'=x`` -> ``=x`` (other cells unchanged)."""
    if cell[:1] == "'" and needs_neutralising(cell[1:]):
        return cell[1:]
    return cell


class _Terminator:
    """A text stream that ends each record ``csv.writer`` writes with ``end`` instead of CRLF."""

    __slots__ = ("_fh", "_end")

    def __init__(self, fh, end: str):
        self._fh, self._end = fh, end

    def write(self, record: str):
        return self._fh.write(record[:-2] + self._end)  # csv.writer writes one whole record per call


class _SafeWriter:
    """A ``csv.writer`` whose text cells pass through :func:`neutralise_cell` and whose cells holding a
    line break are always quoted: ``csv.writer`` quotes only the characters of its own line terminator,
    so with ``"\\n"`` a CR inside a stem would be written bare and split the row. It therefore writes
    CRLF-terminated records to a :class:`_Terminator`, which puts the wanted line ending back."""

    __slots__ = ("_w",)

    def __init__(self, fh, lineterminator: str = "\n", **kw):
        self._w = csv.writer(fh if lineterminator == "\r\n" else _Terminator(fh, lineterminator),
                             lineterminator="\r\n", **kw)

    def writerow(self, row) -> None:
        self._w.writerow([("'" + c if c[:1] in FORMULA_START and _NUMBER.fullmatch(c) is None else c)
                          if type(c) is str else c for c in row])  # neutralise_cell, inlined (hot)

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(fh, **kw) -> _SafeWriter:
    """The writer of every CSV cat-prom writes: ``csv.writer(fh, lineterminator="\\n", **kw)`` with
    text cells neutralised against formula injection (see the module docstring)."""
    return _SafeWriter(fh, **kw)



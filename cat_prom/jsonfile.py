"""The one strict JSON reader for every JSON file the engine reads: banks, batteries, designs.

``json.load`` alone accepts documents that mean something other than what they say, or
that crash later: duplicate keys (``"a": -5, "a": 1.46`` silently keeps the last), ``NaN``
and ``Infinity``, integers too long for Python to convert (a ``ValueError`` traceback),
numbers beyond the double range (read as ``inf``), nesting deep enough to exhaust the
stack (``RecursionError``), NUL characters, and files of any size or encoding.
:func:`read_json` (a file) and :func:`parse_json` (bytes or text already in memory)
accept exactly the JSON of RFC 8259 minus these, and reject anything else with the
caller's :class:`~cat_prom.errors.CatPromError` subclass and a message that names the
file, the position (line and column, or the JSON path such as ``items[3].a``) and the
problem:

* at most :data:`MAX_JSON_BYTES` bytes (20 MiB) of UTF-8; a UTF-8 byte-order mark is
  skipped (editors on Windows write one), UTF-16/32 files are named as such;
* no NUL byte in the file and no ``\\u0000`` in any string;
* no duplicate key in any object;
* only finite numbers: no ``NaN``/``Infinity`` literals, no float beyond ±1.8e308, no
  integer of more than :data:`MAX_INT_DIGITS` digits;
* at most :data:`MAX_DEPTH` levels of nested objects and arrays;
* not empty, and nothing after the document.

CRLF line endings are ordinary JSON whitespace and need nothing special.
"""
from __future__ import annotations

import codecs
import json
import math
import os
import re
from itertools import accumulate
from typing import Any

from .errors import CatPromError

__all__ = ["MAX_JSON_BYTES", "MAX_DEPTH", "MAX_INT_DIGITS", "read_json", "parse_json", "json_path", "decode_utf8",
           "NotUTF8", "line_col"]

#: Largest JSON file read (bytes).
MAX_JSON_BYTES = 20 * 1024 * 1024
#: Deepest nesting of objects and arrays (a bank needs 4: items, an item, options, an option).
MAX_DEPTH = 64
#: Most digits of an integer literal (a 128-bit seed has 39).
MAX_INT_DIGITS = 100

_UTF16_32 = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
             (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class _BadNumber:
    """A number literal the document may not hold; reported with its JSON path after parsing."""

    __slots__ = ("text", "problem")

    def __init__(self, text: str, problem: str):
        self.text, self.problem = text, problem


class _DupDict(dict):
    """An object in which a key appeared twice: ``dup`` = (key, first value, last value)."""

    __slots__ = ("dup",)


def _hooks() -> tuple:
    """``(flagged, hooks)``: json.loads hooks that mark what the document may not hold (a
    :class:`_BadNumber`, a :class:`_DupDict`) and append to ``flagged`` when they do, so that a
    clean document (nearly every one) is not walked again."""
    flagged: list = []

    def pairs(items: list) -> dict:
        d = dict(items)
        if len(d) == len(items):
            return d
        flagged.append("duplicate key")
        first: dict = {}
        for k, v in items:
            if k in first:
                out = _DupDict(d)
                out.dup = (k, first[k], v)
                return out
            first[k] = v
        return d  # pragma: no cover - dict(items) shorter means a key repeated

    def parse_int(text: str):
        if len(text) <= MAX_INT_DIGITS:
            return int(text)
        digits = len(text) - (text[0] == "-")
        if digits <= MAX_INT_DIGITS:
            return int(text)
        flagged.append("long integer")
        return _BadNumber(text, f"has {digits} digits; at most {MAX_INT_DIGITS} are allowed")

    def parse_float(text: str):
        x = float(text)
        if x == math.inf or x == -math.inf:
            flagged.append("huge number")
            return _BadNumber(text, "is beyond the range of a double (±1.8e308)")
        return x

    def parse_constant(text: str):
        flagged.append(text)
        return _BadNumber(text, "NaN/Infinity")

    return flagged, dict(object_pairs_hook=pairs, parse_int=parse_int, parse_float=parse_float,
                         parse_constant=parse_constant)


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string literal (unrolled: fast on long text)
_NOT_BRACKET = bytes(c for c in range(128) if chr(c) not in "[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def _too_deep(text: str) -> bool:
    """Whether valid JSON ``text`` nests objects and arrays more than :data:`MAX_DEPTH` deep, counting
    its brackets outside strings (valid JSON is ASCII there, so ``bytes.translate`` picks them out)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _STRING.sub("", text).encode("ascii", "ignore").translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def json_path(path: tuple) -> str:
    """``('items', 3, 'a')`` -> ``items[3].a``; keys that are not identifiers are quoted: ``designs['x y']``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.isidentifier():
            out += f".{p}" if out else p
        else:
            out += f"[{p!r}]"
    return out or "the top level"


def _short(v: Any) -> str:
    text = v.text if isinstance(v, _BadNumber) else json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


class NotUTF8(ValueError):
    """Why bytes are not UTF-8 text: ``encoding`` names a UTF-16/32 byte-order mark; otherwise ``byte``,
    ``line`` and ``column`` locate the first byte that is not UTF-8."""

    def __init__(self, encoding: str | None = None, byte: int = 0, line: int = 0, column: int = 0):
        super().__init__(encoding or f"byte 0x{byte:02x} at line {line} column {column}")
        self.encoding, self.byte, self.line, self.column = encoding, byte, line, column


def line_col(text: str | bytes, pos: int) -> tuple[int, int]:
    """1-based line and column of offset ``pos`` in ``text``."""
    nl = "\n" if isinstance(text, str) else b"\n"
    return text.count(nl, 0, pos) + 1, pos - (text.rfind(nl, 0, pos) + 1) + 1


def decode_utf8(data: bytes) -> str:
    """The text of a file's bytes: UTF-8, a byte-order mark skipped; :class:`NotUTF8` otherwise.
    Shared by this reader and the CSV reader (:mod:`cat_prom.io.csvfile`)."""
    for bom, name in _UTF16_32:
        if data.startswith(bom):
            raise NotUTF8(encoding=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise NotUTF8(None, data[e.start], *line_col(data, e.start)) from None


class _Reader:
    """Messages for one file: ``{name}: {subject} ...`` (``subject`` e.g. "bank file"; empty for terse)."""

    def __init__(self, source: str, error: type[CatPromError], what: str, fields: dict):
        self.source, self.error, self.what, self.fields = source, error, what, fields

    def fail(self, problem: str, **fields) -> CatPromError:
        return self.error(f"{self.source}: {problem}", **{**self.fields, **fields})

    def subject(self, verb: str) -> str:
        """The start of a sentence about the file: ``"bank file is "`` for ``verb="is"``; empty for a
        terse reader (``what=""``), whose messages start with the problem after the file name."""
        return f"{self.what} {verb} " if self.what else ""


def parse_json(data: bytes | str, *, source: str, error: type[CatPromError], what: str = "",
               fields: dict | None = None) -> Any:
    """Parse a JSON document strictly (see the module docstring).

    Parameters
    ----------
    data : bytes (UTF-8, with or without a byte-order mark) or str
    source : str
        The file name, first word of every message.
    error : CatPromError subclass
        Raised for every problem.
    what : str
        What the document is, for messages ("bank file"); empty for terse messages.
    fields : dict, optional
        Extra ``fields`` of the raised error.

    Returns
    -------
    The document: dicts, lists, str, int, float, bool and None.
    """
    r = _Reader(source, error, what, dict(fields or {}))
    text = _decode(data, r) if isinstance(data, (bytes, bytearray)) else data
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\x00")
    if nul >= 0:
        line, col = line_col(text, nul)
        raise r.fail(f"{r.subject('contains')}a NUL byte at line {line} column {col}"
                     f"{'' if r.what else ' (the file is damaged or not JSON text)'}; remove it",
                     line=line, column=col)
    if not text.strip():
        raise r.fail(f"{r.subject('is')}empty; it must hold a JSON object")
    flagged, hooks = _hooks()
    too_deep = f"{r.subject('is')}nested too deeply (more than {MAX_DEPTH} levels of objects and arrays)"
    try:
        doc = json.loads(text, **hooks)
    except json.JSONDecodeError as e:
        raise r.fail(f"{r.subject('is')}not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                     line=e.lineno, column=e.colno) from None
    except RecursionError:
        raise r.fail(too_deep) from None
    if _too_deep(text):
        raise r.fail(too_deep)
    check_nul = "\\u0000" in text
    if flagged or check_nul:
        _check_tree(doc, r, check_nul=check_nul)
    return doc


def _decode(data: bytes, r: _Reader) -> str:
    try:
        return decode_utf8(data)
    except NotUTF8 as e:
        if e.encoding:
            raise r.fail(f"{r.subject('is')}{e.encoding} text, not UTF-8; save it as UTF-8") from None
        raise r.fail(f"{r.subject('is')}not UTF-8 text ({e}); save it as UTF-8", line=e.line,
                     column=e.column) from None


def _check_tree(doc: Any, r: _Reader, *, check_nul: bool) -> None:
    """The first duplicate key, rejected number or (if ``check_nul``) NUL character in document order,
    reported with its JSON path."""
    if not isinstance(doc, (dict, list)):
        _check_leaf(doc, (), r, check_nul)
        return
    stack = [(doc, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if type(node) is _DupDict:
                key, v1, v2 = node.dup
                where = json_path(path)
                raise r.fail(f"duplicate key {key!r} in the object at {where} (values {_short(v1)} and {_short(v2)}); "
                             f"each key may appear once, so say which value is meant", field=where)
            children = list(node.items())
            if check_nul:
                for k in node:
                    if "\x00" in k:
                        raise r.fail(f"a NUL character (\\u0000) in a key at {json_path(path)}; remove it",
                                     field=json_path(path))
        elif isinstance(node, list):
            children = list(enumerate(node))
        else:  # pragma: no cover - only containers are pushed
            continue
        for k, v in reversed(children):
            if isinstance(v, (dict, list)):
                stack.append((v, path + (k,)))
            else:
                _check_leaf(v, path + (k,), r, check_nul)


def _check_leaf(v: Any, path: tuple, r: _Reader, check_nul: bool) -> None:
    if type(v) is _BadNumber:
        where = json_path(path)
        if v.problem == "NaN/Infinity":
            raise r.fail(f"{r.what or 'the file'} contains {v.text}; only finite numbers are allowed (at {where})",
                         field=where)
        raise r.fail(f"{where}: the number {_short(v)} {v.problem}", field=where)
    if check_nul and isinstance(v, str) and "\x00" in v:
        where = json_path(path)
        raise r.fail(f"{where}: a NUL character (\\u0000) in the text; remove it", field=where)


def read_json(path: str | os.PathLike, *, error: type[CatPromError], what: str = "",
              max_bytes: int | None = None, fields: dict | None = None) -> Any:
    """Read a JSON file strictly (see the module docstring and :func:`parse_json`).

    Parameters
    ----------
    path : the file
    error, what, fields : as :func:`parse_json`
    max_bytes : int, optional
        Size limit (default :data:`MAX_JSON_BYTES`).
    """
    path = os.fspath(path)
    name = os.path.basename(path) or path
    limit = MAX_JSON_BYTES if max_bytes is None else max_bytes
    r = _Reader(name, error, what, dict(fields or {}))
    subject = what or "the file"
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # a device or a growing file cannot make us read more
            size = os.fstat(fh.fileno()).st_size
    except OSError as e:
        reason = "it is a folder" if isinstance(e, IsADirectoryError) else e.strerror
        raise r.fail(f"cannot read {subject} {path!r}: {reason}") from None
    if len(data) > limit:
        how_big = f"{size} bytes" if size > limit else f"more than {limit} bytes"  # a device has no size
        raise r.fail(f"{subject} {path!r} is {how_big}; the limit is {limit}")
    return parse_json(data, source=name, error=error, what=what, fields=fields)

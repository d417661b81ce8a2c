"""Hostile and careless files through the ``cat-prom`` command line (issue 10, "Hostile files").

The corpus in ``hostile_corpus.py`` runs every command that reads a file on every variant of
that file (see its docstring). Here every case must come out ``clean`` (a bad file rejected
with exit 2 and a message naming the file and the problem) or ``accepted`` (a legitimate file
accepted, with safe outputs), never with a traceback, a RuntimeWarning, or a CSV cell a
spreadsheet would run. The bulk runs in-process through :func:`cat_prom.cli.main`; a sample,
and the cases that need a memory limit, run through the installed console script, and the
sample must give the same outcome and message both ways.

The counts are printed and written to ``benchmarks/results/hostile_files.json``; reproduce with

    .venv/bin/python -m pytest tests/core/test_hostile_files.py -q -s
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import hostile_corpus as hc
import hostile_variants as hv
from cat_prom import ItemBank
from cat_prom.cli import main
from cat_prom.io.csvfile import csv_writer, needs_neutralising, neutralise_cell, restore_cell

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COUNTS_PATH = os.path.join(ROOT, "benchmarks", "results", "hostile_files.json")
REPRODUCE = ".venv/bin/python -m pytest tests/core/test_hostile_files.py -q -s"


def console_script() -> list:
    exe = shutil.which("cat-prom", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "cat_prom.cli"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return hc.Corpus(str(tmp_path_factory.mktemp("hostile")))


@pytest.fixture(scope="module")
def results(corpus):
    exe = console_script()
    isolated = [c for c in corpus.cases if c.variant.isolate]
    with ThreadPoolExecutor(max_workers=4) as pool:  # subprocesses run while the bulk runs in-process
        pending = pool.map(lambda c: hc.run_subprocess(c, exe), isolated)
        with hc.without_plugin_commands():
            bulk = [hc.run_in_process(c) for c in corpus.cases if not c.variant.isolate]
        return bulk + list(pending)


# ------------------------------------------------------------------ the corpus itself
READING_COMMANDS = {
    "bank validate", "bank validate --fix-hash", "bank show", "bank export csv", "bank export mirt",
    "bank export catr", "bank report", "bank report --responses", "bank import csv", "bank import mirt",
    "bank import catr", "score", "score-table", "calibrate", "calibrate --anchor", "calibrate --stems",
    "link (new bank)", "link (--to bank)", "simulate", "simulate --design", "simulate --responses", "load_battery"}

#: The cases the issue reports (4 tracebacks, 9 silently wrong results), by (family, variant, command).
ISSUE_CASES = [
    ("bank", "int-5000-digits-a", "bank validate"), ("bank", "int-5000-digits-a", "score"),
    ("bank", "nested-100000-arrays", "bank validate --fix-hash"),
    ("bank", "a-1e308", "bank validate"), ("bank", "a-1e308", "score"),
    ("bank", "threshold-minus-1e308", "score"), ("bank", "threshold-plus-1e308", "simulate"),
    ("bank", "dup-key-item", "bank validate"), ("bank", "dup-key-item", "score"),
    ("battery", "dup-key-designs", "load_battery"), ("design", "dup-key", "simulate --design"),
    ("resp", "NUL-after-value", "score"), ("params-csv", "NUL-after-value", "bank import csv"),
    ("resp", "duplicate-person-id", "score"), ("resp", "duplicate-person-id", "calibrate"),
    ("bank", "formula-ids-and-stems", "score"), ("bank", "formula-ids-and-stems", "bank export csv"),
    ("resp", "formula-person-ids", "score"), ("resp", "formula-person-ids", "simulate --responses"),
]


def test_corpus_covers_every_reading_command_and_the_issue_cases(corpus):
    assert {c.command for c in corpus.cases} == READING_COMMANDS
    keys = {(c.family, c.variant.name, c.command) for c in corpus.cases}
    missing = [k for k in ISSUE_CASES if k not in keys]
    assert not missing, missing
    assert len(corpus.cases) > 155 and len({(c.family, c.variant.name) for c in corpus.cases}) > 155
    bad = [c for c in corpus.cases if c.bad]
    assert all(c.expect for c in bad), [c.id for c in bad if not c.expect]  # every bad file says what to expect
    for family in ("bank", "resp", "params-csv", "params-mirt", "params-catr", "design", "battery", "stems"):
        fam = [c for c in corpus.cases if c.family == family]
        assert any(c.bad for c in fam) and any(not c.bad for c in fam), family


def test_every_case_is_clean_or_accepted(results):
    wrong = [f"{r.outcome}: {r.case.id}: {'; '.join(map(str, r.problems))[:400]}"
             for r in results if r.outcome not in ("clean", "accepted")]
    assert not wrong, f"{len(wrong)} of {len(results)} cases:\n" + "\n".join(wrong[:40])


def test_counts_are_printed_and_recorded(results, capsys):
    n = hc.counts(results)
    assert n["tried"] == len(results) and n["skipped"] == 0
    assert n["traceback"] == 0 and n["clean"] == n["bad_inputs"] and n["accepted"] == n["legitimate_inputs"]
    doc = {"command": REPRODUCE, "counts": n, "outcomes": hc.OUTCOME_MEANING}
    try:
        with open(COUNTS_PATH, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
    except OSError:  # a read-only checkout: the printed line is the record
        pass
    with capsys.disabled():
        print(f"\nhostile-file corpus: {n['tried']} tried, {n['clean']} bad files rejected cleanly, "
              f"{n['accepted']} legitimate files accepted, {n['traceback']} tracebacks, "
              f"{n['silent'] + n['unsafe_output']} silently wrong, {n['vague']} vague, "
              f"{n['wrongly_rejected']} wrongly rejected -> {os.path.relpath(COUNTS_PATH, ROOT)}")


#: Cases also run through the console script: the issue's tracebacks and silent results, a legitimate file
#: of each kind, and one bad file of each other family.
SUBPROCESS_SAMPLE = [
    ("bank", "int-5000-digits-a", "bank validate"), ("bank", "int-5000-digits-a", "score"),
    ("bank", "nested-100000-arrays", "bank validate --fix-hash"), ("bank", "a-1e308", "score"),
    ("bank", "dup-key-item", "bank validate"), ("resp", "NUL-after-value", "score"),
    ("resp", "duplicate-person-id", "calibrate"), ("bank", "formula-ids-and-stems", "bank export csv"),
    ("resp", "formula-person-ids", "score"), ("bank", "bom-crlf", "bank validate"),
    ("params-mirt", "a-1e308", "bank import mirt"), ("params-catr", "formula-ids", "bank import catr"),
    ("params-csv", "semicolons", "bank import csv"), ("design", "NaN", "simulate --design"),
    ("stems", "NUL", "calibrate --stems"), ("bank", "utf-16", "link (--to bank)"),
]


def test_console_script_sample_gives_the_same_outcomes(corpus, results):
    by_key = {(r.case.family, r.case.variant.name, r.case.command): r for r in results}
    sample = [c for c in corpus.cases if (c.family, c.variant.name, c.command) in SUBPROCESS_SAMPLE]
    assert len(sample) == len(SUBPROCESS_SAMPLE)
    exe = console_script()
    with ThreadPoolExecutor(max_workers=4) as pool:
        sub = list(pool.map(lambda c: hc.run_subprocess(c, exe), sample))
    for r in sub:
        key = (r.case.family, r.case.variant.name, r.case.command)
        assert r.outcome in ("clean", "accepted"), (key, r.outcome, r.problems)
        assert r.outcome == by_key[key].outcome, key
        if r.case.bad:  # the same message both ways
            assert r.code == 2 and r.stderr == by_key[key].stderr, (key, r.stderr, by_key[key].stderr)
    isolated = [r for r in results if r.case.variant.isolate]
    assert isolated and all(r.outcome == "clean" for r in isolated)


# ------------------------------------------------------------------ formula cells and CSV writing
@pytest.mark.parametrize("cell, written", [
    ("=cmd()", "'=cmd()"), ('=HYPERLINK("http://x","y")', "'=HYPERLINK(\"http://x\",\"y\")"), ("+SUM(1)", "'+SUM(1)"),
    ("-2+3+cmd()", "'-2+3+cmd()"), ("@SUM(A1)", "'@SUM(A1)"), ("\tp1", "'\tp1"), ("\rp1", "'\rp1"),
    ("-", "'-"), ("-nan", "'-nan"),
    # numbers (ours, or a person id that is a number) stay numbers: a spreadsheet reads them as such
    ("-1.25", "-1.25"), ("+3", "+3"), ("-1e-05", "-1e-05"), ("-inf", "-inf"), ("-Infinity", "-Infinity"),
    ("p-1", "p-1"), ("", ""), ("Q1", "Q1"), ("'=x", "'=x"),
])
def test_neutralise_cell_follows_owasp_for_text_only(cell, written):
    assert neutralise_cell(cell) == written
    assert needs_neutralising(cell) == (written != cell)
    assert restore_cell(written) == cell or cell == "'=x"
    assert neutralise_cell(-1.25) == -1.25 and neutralise_cell(3) == 3  # numbers written as numbers


def test_csv_writer_quotes_line_breaks_and_keeps_lf_endings():
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["Q1", "Line one\rline two", -1.5, "=x"])
    w.writerows([["Q2", "a\nb", "-0.5", "@y"]])
    text = buf.getvalue()
    assert text == "Q1,\"Line one\rline two\",-1.5,'=x\nQ2,\"a\nb\",-0.5,'@y\n"
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["Q1", "Line one\rline two", "-1.5", "'=x"],
                                                               ["Q2", "a\nb", "-0.5", "'@y"]]


def test_simulation_csv_neutralises_formula_ids(tmp_path):
    """The per-simulee CSV goes through csv_writer like every other CSV: ids that would run as
    formulas get a leading quote, numbers (negative ones included) stay numbers."""
    from cat_prom.bank import ItemBank
    from cat_prom.simulation import simulate
    bank = ItemBank.from_params([1.5, 1.2], [[-1.0, 0.5], [0.0, 1.0]], ids=["@a", "b"])
    res = simulate(bank, {"min_items": 2, "max_items": 2, "se_target": None},
                   responses=[[0, 1], [2, 0]], ids=["=cmd()", "p1"], seed=1)
    p = tmp_path / "s.csv"
    res.to_csv(p)
    rows = list(csv.reader(open(p, newline="", encoding="utf-8")))
    assert rows[1][0] == "'=cmd()" and rows[2][0] == "p1"
    assert {rows[1][4], rows[2][4]} <= {"'@a;b", "b;@a"}
    assert all(not needs_neutralising(c) or c.startswith("'") for row in rows for c in row[:1])
    assert float(rows[1][1]) == res.theta[0]  # theta written as a plain number


@pytest.mark.parametrize("fmt", ["csv", "mirt", "catr"])
def test_export_then_import_keeps_formula_ids_and_stems(tmp_path, fmt):
    """Export neutralises the cells; import removes the quote again, so the round trip is exact."""
    stems = [*hv.FORMULA_STEMS[:3], "Line one\rline two", "Comma, and \"quotes\""]
    doc = hv.bank_doc([(i, *it[1:3], s) for i, it, s in zip(hv.FORMULA_IDS, hv.ITEMS, stems)])
    bank_file = tmp_path / "b.json"
    bank_file.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / f"export-{fmt}.csv"
    assert main(["bank", "export", str(bank_file), "--format", fmt, "--out", str(out)]) == 0
    assert not hc.formula_cells(str(out)) and len(hc.csv_widths(str(out))) == 1
    first_cells = [row[0] for row in csv.reader(open(out, newline="", encoding="utf-8"))][1:]
    assert first_cells == [neutralise_cell(i) for i in hv.FORMULA_IDS]
    back = tmp_path / "back.json"
    assert main(["bank", "import", str(out), "--format", fmt, "--out", str(back), "--values", "1,2,3,4,5"]) == 0
    orig, got = ItemBank.load(bank_file), ItemBank.load(back)
    assert got.ids == orig.ids == tuple(hv.FORMULA_IDS)
    np.testing.assert_array_equal(got.a, orig.a)  # repr(float) written: exact
    np.testing.assert_array_equal(got.b, orig.b)
    if fmt == "csv":
        assert [it.stem for it in got.items] == [s.strip() for s in stems]


def test_score_output_neutralises_person_ids_but_keeps_numbers(tmp_path, capsys):
    bank_file = tmp_path / "b.json"
    bank_file.write_text(json.dumps(hv.bank_doc()), encoding="utf-8")
    resp = tmp_path / "r.csv"
    resp.write_text(hv.responses_text(["Q1", "Q2"], [[1, 1], [5, 5], [2, 2]], ["=cmd()", "-1.25", "@x"]),
                    encoding="utf-8")
    assert main(["score", "--bank", str(bank_file), "--responses", str(resp)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [r[0] for r in rows[1:]] == ["'=cmd()", "-1.25", "'@x"]
    assert float(rows[1][1]) < 0 and rows[1][1][0] == "-"  # a negative θ is written as a number


# ------------------------------------------------------------------ calibrations outside the plausible range
def test_calibration_with_an_item_that_does_not_discriminate_names_it(tmp_path, capsys):
    """A reverse-keyed item hits the EM's slope floor (a = 0.001, thresholds in the hundreds): no bank
    the loader would reject is written; the message names the file and the item."""
    values = hv.sample_grm(hv.ITEMS, 400, 21)
    data = np.column_stack([values, 6 - values[:, 0]])  # N1 = Q1 reversed
    resp = tmp_path / "cal.csv"
    resp.write_text(hv.responses_text([*[it[0] for it in hv.ITEMS], "N1"], data), encoding="utf-8")
    out = tmp_path / "bank.json"
    code = main(["calibrate", str(resp), "--out", str(out), "--no-se", "--no-fit", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith("cat-prom: error: cal.csv: the calibration gave implausible parameters, so no bank was "
                          "written: item 'N1': "), err
    assert "drop the item" in err


# ------------------------------------------------------------------ properties of the reader and the writer
from hypothesis import given, settings, strategies as st  # noqa: E402

from cat_prom.errors import InvalidBankError  # noqa: E402
from cat_prom.jsonfile import MAX_DEPTH, MAX_INT_DIGITS, parse_json  # noqa: E402

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10 ** 120, max_value=10 ** 120)
    | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=25)


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max(map(_depth, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(_depth, v), default=0)
    return 0


def _long_int(v) -> bool:
    if isinstance(v, dict):
        return any(map(_long_int, v.values()))
    if isinstance(v, list):
        return any(map(_long_int, v))
    return isinstance(v, int) and not isinstance(v, bool) and len(str(abs(v))) > MAX_INT_DIGITS


@settings(max_examples=300, deadline=None)
@given(doc=_JSON, indent=st.sampled_from([None, 1]), crlf=st.booleans())
def test_strict_reader_returns_what_json_dumps_wrote(doc, indent, crlf):
    """Every document without a NUL, a long integer or deep nesting reads back equal (bytes or text, BOM,
    CRLF); the others are rejected with the domain error. Reference: the standard library's json."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    text = text.replace("\n", "\r\n") if crlf else text
    ok = _depth(doc) <= MAX_DEPTH and not _long_int(doc)
    for data in (text, b"\xef\xbb\xbf" + text.encode("utf-8")):
        if ok:
            assert parse_json(data, source="x.json", error=InvalidBankError) == doc
        else:
            with pytest.raises(InvalidBankError, match=r"^x\.json: "):
                parse_json(data, source="x.json", error=InvalidBankError)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(st.text(st.characters(blacklist_characters="\x00"), max_size=6)
                              | st.floats(allow_nan=False), min_size=3, max_size=3), min_size=1, max_size=5))
def test_csv_writer_round_trip_and_no_formula_cells(rows):
    """What :func:`csv_writer` writes parses back (csv module, strict) to the same table once
    :func:`restore_cell` is applied, and no text cell can run as a formula."""
    buf = io.StringIO()
    csv_writer(buf).writerows(rows)
    back = list(csv.reader(io.StringIO(buf.getvalue(), newline=""), strict=True))
    assert len(back) == len(rows)
    for got, want in zip(back, rows):
        for g, w in zip(got, want, strict=True):
            assert g[:1] not in hc.FORMULA_START or _is_number(g)
            if isinstance(w, float):
                assert float(g) == w  # numbers are written as numbers, never prefixed
            elif not w.startswith("'"):
                assert restore_cell(g) == w


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

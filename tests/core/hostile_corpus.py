"""A corpus of hostile and careless input files for the ``cat-prom`` command line, and its runner.

Every command that reads a file (``bank validate [--fix-hash]``, ``bank show``, ``bank export``
(csv, mirt, catr), ``bank report``, ``bank import`` (csv, mirt, catr), ``score``, ``score-table``,
``calibrate`` (responses, ``--anchor``, ``--stems``), ``link`` (both banks), ``simulate``
(``--bank``, ``--design``, ``--responses``)) and the battery-file loader is run on every variant
of the file it reads: bank JSON, response CSV, parameter CSV, design JSON, battery JSON and
stems CSV. A variant is either **bad** (it must be rejected: non-zero exit, ``cat-prom: error:``
naming the file and matching the variant's message pattern) or **legitimate** (BOM, CRLF,
formula-like ids...: it must be accepted). Every run must end without a traceback and without a
RuntimeWarning, and every CSV it writes must hold no text cell that starts with a formula
character (``= + - @`` tab CR) unless the cell is a plain number.

The files come from ``hostile_variants.py``; this module writes them (:class:`Corpus`), runs
the cases in-process (:func:`run_in_process`, through :func:`cat_prom.cli.main`) or through an
executable (:func:`run_subprocess`), and judges each (:func:`judge`). It needs numpy and the
standard library only, so the same corpus runs against an older cat-prom. As a script it prints
the counts::

    .venv/bin/python tests/core/hostile_corpus.py                      # in-process, this checkout
    .venv/bin/python tests/core/hostile_corpus.py --exe .venv/bin/cat-prom --json counts.json
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script from anywhere
from hostile_variants import (ITEMS, MARKUP_STEM, NEW_ITEMS, Variant, _b, bank_doc, bank_variants,  # noqa: E402
                              battery_variants, design_variants, dumps, params_variants, response_variants,
                              responses_text, sample_grm, stems_variants)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
OUTCOMES = ("clean", "accepted", "vague", "silent", "unsafe_output", "wrongly_rejected", "traceback")
#: What each outcome means (bad = the file must be rejected; legitimate = it must be accepted).
OUTCOME_MEANING = {
    "clean": "bad file rejected: exit 2, `cat-prom: error:` naming the file and the problem",
    "accepted": "legitimate file accepted; outputs safe (no formula cells, well-formed CSV, no raw markup)",
    "vague": "bad file rejected without a traceback, but the message does not name the file or the problem",
    "silent": "bad file accepted (exit 0): a silently wrong result",
    "unsafe_output": "accepted, but a CSV output holds formula cells or broken rows, or a RuntimeWarning was shown",
    "wrongly_rejected": "legitimate file rejected",
    "traceback": "a traceback (an uncaught exception, or killed by the memory limit)",
}
SLOW = frozenset({"bank report", "simulate", "calibrate --anchor", "simulate --responses",
                  "bank report --responses", "calibrate", "simulate --design", "calibrate --stems"})

# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    family: str
    command: str
    variant: Variant
    argv: list
    csv_out: tuple = ()
    html_out: tuple = ()
    call: Callable | None = None  # an engine function instead of the command line

    @property
    def id(self) -> str:
        return f"{self.family}:{self.variant.name} | {self.command}"

    @property
    def bad(self) -> bool:
        return self.variant.override.get(self.command, (self.variant.bad,))[0]

    @property
    def expect(self) -> str | None:
        return self.variant.override.get(self.command, (None, self.variant.expect))[1]


class Corpus:
    """Writes every file under ``root`` and lists the cases (:attr:`cases`)."""

    def __init__(self, root: str, *, slow: bool = True):
        self.root = root
        self.cases: list[Case] = []
        self._n = 0
        self.bank = self._write("base", "bank.json", _b(dumps(bank_doc())))
        self.bank2 = self._write("base", "bank2.json", _b(dumps(bank_doc(
            [(iid, round(a / 1.1, 6), [round(1.1 * t + 0.2, 6) for t in thr], s) for iid, a, thr, s in ITEMS],
            bank_id="hostile-2"))))
        self.resp_text = responses_text([it[0] for it in ITEMS], sample_grm(ITEMS, 300, 11))
        self.resp = self._write("base", "resp.csv", _b(self.resp_text))
        self.calib_anchor = self._write("base", "calib-anchor.csv", _b(responses_text(
            [it[0] for it in ITEMS + NEW_ITEMS], sample_grm(ITEMS + NEW_ITEMS, 400, 12))))
        self.slow = slow
        self._bank_cases()
        self._response_cases()
        self._params_cases()
        self._design_cases()
        self._battery_cases()
        self._stems_cases()

    # ------------------------------------------------------------------ files
    def _write(self, family, name, data) -> str:
        folder = os.path.join(self.root, family)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    def _file(self, family: str, v: Variant) -> str:
        name = f"{family}-{v.name}.{v.ext}"
        if v.path:
            return v.path
        if v.name == "a-folder":
            path = os.path.join(self.root, family, name)
            os.makedirs(path, exist_ok=True)
            return path
        if v.name == "missing":
            return os.path.join(self.root, family, name)
        if v.name == "huge-file":
            path = os.path.join(self.root, family, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.truncate(21 * 1024 * 1024)  # sparse: nothing is written
            return path
        return self._write(family, name, v.data)

    def _out(self) -> str:
        self._n += 1
        path = os.path.join(self.root, "out", f"{self._n:04d}")
        return path

    def _add(self, family, command, v, argv, csv_out=(), html_out=(), call=None):
        bad = v.override.get(command, (v.bad,))[0]
        if command in v.skip:
            return
        if command in SLOW and not bad and not (command in v.full and self.slow):
            return
        self.cases.append(Case(family, command, v, [str(a) for a in argv], tuple(csv_out), tuple(html_out), call))

    # ------------------------------------------------------------------ families
    def _bank_cases(self):
        for v in bank_variants():
            f = self._file("bank", v)
            resp = self.resp
            if v.items:
                resp = self._write("bank", f"resp-{v.name}.csv",
                                   _b(responses_text(v.items, sample_grm(ITEMS, 40, 13))))
            o = self._out
            for command, argv, csv_out, html_out in [
                ("bank validate", ["bank", "validate", f], (), ()),
                ("bank show", ["bank", "show", f, "--items"], (), ()),
            ]:
                self._add("bank", command, v, argv, csv_out, html_out)
            if v.data is not None:  # --fix-hash rewrites the file: give it a copy with the same name
                d = self._out()
                os.makedirs(d)
                fix = shutil.copy(f, os.path.join(d, os.path.basename(f)))
            else:
                fix = f
            self._add("bank", "bank validate --fix-hash", v, ["bank", "validate", "--fix-hash", fix])
            for fmt in ("csv", "mirt", "catr"):
                out = os.path.join(o(), f"export-{fmt}.csv")
                self._add("bank", f"bank export {fmt}", v, ["bank", "export", f, "--format", fmt, "--out", out], [out])
            d = o()
            self._add("bank", "bank report", v, ["bank", "report", f, "--out", d], (), [os.path.join(d, "report.html")])
            out = os.path.join(o(), "scores.csv")
            self._add("bank", "score", v, ["score", "--bank", f, "--responses", resp, "--out", out], [out])
            out = os.path.join(o(), "table.csv")
            self._add("bank", "score-table", v, ["score-table", "--bank", f, "--out", out], [out])
            d = o()
            self._add("bank", "simulate", v, ["simulate", "--bank", f, "--n", "20", "--seed", "1", "--out", d,
                                              "--quiet"], [os.path.join(d, "simulees.csv")],
                      [os.path.join(d, "report.html")])
            if v.items is None:  # linking and anchoring need the ids of the other bank and the data
                self._add("bank", "link (new bank)", v, ["link", f, "--to", self.bank2, "--out",
                                                         os.path.join(o(), "linked.json")])
                self._add("bank", "link (--to bank)", v, ["link", self.bank2, "--to", f, "--out",
                                                          os.path.join(o(), "linked.json")])
                self._add("bank", "calibrate --anchor", v, ["calibrate", self.calib_anchor, "--anchor", f, "--out",
                                                            os.path.join(o(), "cal.json"), "--no-se", "--no-fit",
                                                            "--quiet"])

    def _response_cases(self):
        ids = [it[0] for it in ITEMS]
        for v in response_variants(self.resp_text, ids):
            f = self._file("resp", v)
            o = self._out
            out = os.path.join(o(), "scores.csv")
            self._add("resp", "score", v, ["score", "--bank", self.bank, "--responses", f, "--out", out], [out])
            d = o()
            self._add("resp", "simulate --responses", v, ["simulate", "--bank", self.bank, "--responses", f, "--out",
                                                          d, "--seed", "1", "--quiet"],
                      [os.path.join(d, "simulees.csv")], [os.path.join(d, "report.html")])
            d = o()
            self._add("resp", "bank report --responses", v, ["bank", "report", self.bank, "--responses", f,
                                                             "--out", d], (), [os.path.join(d, "report.html")])
            d = o()
            self._add("resp", "calibrate", v, ["calibrate", f, "--out", os.path.join(d, "cal.json"), "--no-se",
                                               "--no-fit", "--quiet"])

    def _params_cases(self):
        for fmt in ("csv", "mirt", "catr"):
            for v in params_variants(fmt):
                f = self._file(f"params-{fmt}", v)
                self._add(f"params-{fmt}", f"bank import {fmt}", v,
                          ["bank", "import", f, "--format", fmt, "--out", os.path.join(self._out(), "bank.json"),
                           "--values", "1,2,3,4,5"])

    def _design_cases(self):
        for v in design_variants():
            f = self._file("design", v)
            d = self._out()
            self._add("design", "simulate --design", v, ["simulate", "--bank", self.bank, "--design", f, "--n", "20",
                                                         "--seed", "1", "--out", d, "--quiet"],
                      [os.path.join(d, "simulees.csv")])

    def _battery_cases(self):
        def load(path):
            def call():
                from cat_prom.battery_file import load_battery
                load_battery(path, banks={"pain", "sleep"})
            return call
        for v in battery_variants():
            f = self._file("battery", v)
            self._add("battery", "load_battery", v, [f], call=load(f))

    def _stems_cases(self):
        for v in stems_variants():
            f = self._file("stems", v)
            d = self._out()
            self._add("stems", "calibrate --stems", v, ["calibrate", self.resp, "--stems", f, "--out",
                                                        os.path.join(d, "cal.json"), "--no-se", "--no-fit", "--quiet"])


# --------------------------------------------------------------------------- running and judging
@dataclass
class Result:
    case: Case
    code: int | None
    stdout: str
    stderr: str
    exception: str | None
    runtime_warnings: list
    outcome: str = ""
    problems: list = field(default_factory=list)


def formula_cells(path: str) -> list[str]:
    """Text cells of a CSV that a spreadsheet would run: starting with = + - @ tab or CR, and not a number."""
    bad = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            for c in row:
                if c[:1] in FORMULA_START and c:
                    try:
                        float(c)
                    except ValueError:
                        bad.append(c)
    return bad


def csv_widths(path: str) -> set:
    """The distinct numbers of cells per row of a CSV (one number for a well-formed table)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {len(row) for row in csv.reader(fh, strict=True)}


def judge(r: Result) -> Result:
    c = r.case
    if r.code == 2 and re.search(r"error: (unrecognized arguments|argument \S+: invalid choice)", r.stderr):
        r.outcome = "skipped"  # an older cat-prom without this option or command
        return r
    if r.exception or "Traceback" in r.stderr:
        r.outcome = "traceback"
        r.problems.append((r.exception or r.stderr).strip().splitlines()[-1])
        return r
    if r.runtime_warnings or "RuntimeWarning" in r.stderr:
        r.problems.append(f"RuntimeWarning: {r.runtime_warnings or r.stderr}")
    if c.bad:
        if r.code == 0:
            r.outcome = "silent"
            r.problems.append("bad input accepted (exit 0)")
            return r
        msg = r.stderr
        named = _file_of(c) in msg
        matches = c.expect is None or re.search(c.expect, msg) is not None
        if "cat-prom: error:" in msg and named and matches and not r.problems:
            r.outcome = "clean"
        else:
            r.outcome = "vague"
            if not named:
                r.problems.append(f"the message does not name {_file_of(c)!r}")
            if not matches:
                r.problems.append(f"the message does not match {c.expect!r}")
        return r
    if r.code != 0:
        r.outcome = "wrongly_rejected"
        r.problems.append(f"exit {r.code}: {r.stderr.strip()[-300:]}")
        return r
    for path in c.csv_out:
        if os.path.exists(path):
            cells = formula_cells(path)
            if cells:
                r.problems.append(f"{os.path.basename(path)}: formula cells {cells[:3]!r}")
            widths = csv_widths(path)
            if len(widths) > 1:
                r.problems.append(f"{os.path.basename(path)}: rows of {sorted(widths)} cells (an unquoted line break?)")
    for path in c.html_out:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                if MARKUP_STEM in fh.read():
                    r.problems.append(f"{os.path.basename(path)}: raw markup from the input")
    r.outcome = "unsafe_output" if r.problems else "accepted"
    return r


def _file_of(c: Case) -> str:
    """The basename the error message must contain: the hostile file of the case."""
    f = c.variant.path or next(a for a in c.argv if os.path.basename(a).startswith(f"{c.family}-")
                               or a == c.variant.path)
    return os.path.basename(f)


@contextlib.contextmanager
def without_plugin_commands():
    """Build ``cat-prom``'s parser without the entry-point commands (``serve``, ``keys``), which read no
    files: finding and describing them costs ~10 ms per :func:`cat_prom.cli.main` call, most of an
    in-process case. The engine commands' parsers are unchanged; the subprocess sample runs the
    full console script."""
    import cat_prom.cli as cli
    saved = getattr(cli, "_plugins", None)
    if saved is None:  # an older cat-prom without entry-point commands
        yield
        return
    cli._plugins = lambda: []
    try:
        yield
    finally:
        cli._plugins = saved


def run_in_process(case: Case) -> Result:
    """Run one case through :func:`cat_prom.cli.main` (or its engine function), capturing output and warnings."""
    from cat_prom.cli import main
    from cat_prom.errors import CatPromError
    out, err = io.StringIO(), io.StringIO()
    exc = None
    code = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if case.call is not None:
                    try:
                        case.call()
                        code = 0
                    except CatPromError as e:
                        print(f"cat-prom: error: {e.message}", file=sys.stderr)
                        code = 2
                    except ImportError as e:  # an older cat-prom without this reader
                        return Result(case, None, "", str(e), None, [], outcome="skipped")
                else:
                    code = main(case.argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
            except Exception:  # noqa: BLE001 - what the corpus is looking for
                exc = traceback.format_exc()
    rw = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    return judge(Result(case, code, out.getvalue(), err.getvalue(), exc, rw))


MEMORY_LIMIT = 4 * 1024 ** 3


def _limit_memory():  # pragma: no cover - runs in the child
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_subprocess(case: Case, exe: list, env: dict | None = None, timeout: float = 300) -> Result:
    """Run one command-line case through an executable (``[".venv/bin/cat-prom"]``), with at most
    :data:`MEMORY_LIMIT` bytes of address space (a reader that slurps ``/dev/zero`` fails, not the machine)."""
    p = subprocess.run([*exe, *case.argv], capture_output=True, text=True, errors="replace", timeout=timeout,
                       env=env, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory)
    r = Result(case, p.returncode, p.stdout, p.stderr, None, [])
    if p.returncode < 0 or "MemoryError" in p.stderr:
        r.exception = f"killed by signal {-p.returncode}" if p.returncode < 0 else "MemoryError"
    return judge(r)


def counts(results: list) -> dict:
    """``tried``, each outcome, and the subtotals the reliability page publishes (skipped cases aside)."""
    skipped = sum(r.outcome == "skipped" for r in results)
    results = [r for r in results if r.outcome != "skipped"]
    c = Counter(r.outcome for r in results)
    out = {"tried": len(results), **{k: c.get(k, 0) for k in OUTCOMES}, "skipped": skipped}
    out["bad_inputs"] = sum(r.case.bad for r in results)
    out["legitimate_inputs"] = out["tried"] - out["bad_inputs"]
    out["rejected_without_traceback"] = out["clean"] + out["vague"]
    out["families"] = dict(sorted(Counter(r.case.family.split("-")[0] for r in results).items()))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run the hostile-file corpus and print the counts.")
    p.add_argument("--exe", nargs="+", help="run the command-line cases through this command (default: in-process)")
    p.add_argument("--json", help="also write the counts (and every non-clean case) to this file")
    p.add_argument("--fast", action="store_true", help="skip the full runs of slow commands on legitimate files")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cat-prom-hostile-") as root:
        corpus = Corpus(root, slow=not args.fast)
        results = []
        with without_plugin_commands():
            for case in corpus.cases:
                if args.exe and case.call is not None:
                    continue  # engine functions run in-process only
                if args.exe or case.variant.isolate:
                    exe = args.exe or [sys.executable, "-m", "cat_prom.cli"]
                    results.append(run_subprocess(case, exe))
                else:
                    results.append(run_in_process(case))
    n = counts(results)
    print(json.dumps(n, indent=2))
    for r in results:
        if r.outcome not in ("clean", "accepted"):
            print(f"{r.outcome:16s} {r.case.id}: {'; '.join(map(str, r.problems))[:300]}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"counts": n, "not_clean": [{"case": r.case.id, "outcome": r.outcome,
                                                   "problems": [str(x)[:300] for x in r.problems]}
                                                  for r in results if r.outcome not in ("clean", "accepted")]},
                      fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``cat-prom``: the command line for researchers and operators.

Each subcommand is a pair of functions: ``_register_X(subparsers)`` adds its
parser (and sets ``func=_cmd_X``), and ``_cmd_X(args) -> int`` runs it and
returns the exit status. To add a subcommand, write the pair and append the
register function to :data:`REGISTRARS`; import heavy modules inside ``_cmd_X``
so that ``cat-prom --help`` stays fast. Raise :class:`~cat_prom.errors.CatPromError`
(e.g. ``InvalidDataError``) for user errors; never print tracebacks. The service's subcommands (``serve``, ``keys``) come from
``api.cli.add_subcommands`` when the service package is installed; the engine
never imports it (or flask) at module import.

Every :class:`~cat_prom.errors.CatPromError` (and an unreadable file) ends the
program with ``cat-prom: error: <message>`` on stderr and exit status 2, never
a traceback.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from typing import Callable, Sequence

import numpy as np

from . import __version__
from .errors import CatPromError, InvalidDataError

__all__ = ["main", "build_parser", "REGISTRARS"]

PROG = "cat-prom"
EXIT_USER_ERROR = 2


# ------------------------------------------------------------------ helpers
def _out_stream(path: str | None):
    """A text stream for ``--out`` (stdout when absent or '-')."""
    if path in (None, "-"):
        return _NoClose(sys.stdout)
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as e:
        raise InvalidDataError(f"cannot write {path!r}: {e.strerror}") from None


class _NoClose:
    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self.fh

    def __exit__(self, *exc):
        self.fh.flush()
        return False


def _info(msg: str) -> None:
    print(msg, file=sys.stderr)


def _load_bank(path: str):
    from .bank import ItemBank
    return ItemBank.load(path)


def _grid_prior(args) -> tuple[tuple, tuple]:
    if args.grid_points < 5 or args.grid_points > 2001:
        raise InvalidDataError(f"--grid-points must be between 5 and 2001, got {args.grid_points}")
    lo, hi = args.grid_range
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise InvalidDataError(f"--grid-range needs MIN < MAX, got {lo} {hi}")
    if not (math.isfinite(args.prior_sd) and args.prior_sd > 0):
        raise InvalidDataError(f"--prior-sd must be > 0, got {args.prior_sd}")
    if not math.isfinite(args.prior_mean):
        raise InvalidDataError(f"--prior-mean must be finite, got {args.prior_mean}")
    return (lo, hi, args.grid_points), (args.prior_mean, args.prior_sd)


def _add_grid_prior(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quadrature grid and prior")
    g.add_argument("--grid-points", type=int, default=81, metavar="N",
                   help="points of the θ grid (default 81); also bounds ML/WLE/MAP's search")
    g.add_argument("--grid-range", type=float, nargs=2, default=(-6.0, 6.0), metavar=("MIN", "MAX"),
                   help="ends of the θ grid (default -6 6)")
    g.add_argument("--prior-mean", type=float, default=0.0, metavar="M", help="mean of the normal prior (default 0)")
    g.add_argument("--prior-sd", type=float, default=1.0, metavar="S", help="SD of the normal prior (default 1)")


def _num(x: float, digits: int) -> str:
    if not np.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "")
    return f"{x:.{digits}f}"


def _split_list(s: str | None) -> list[str] | None:
    if s is None:
        return None
    parts = [p.strip() for p in s.split(",")]
    if any(not p for p in parts):
        raise InvalidDataError(f"empty entry in the list {s!r}; separate entries with commas")
    return parts


def _values_list(s: str | None):
    parts = _split_list(s)
    if parts is None:
        return None
    out = []
    for p in parts:
        try:
            out.append(int(p))
        except ValueError:
            out.append(p)
    return out


# ------------------------------------------------------------------ bank
def _register_bank(subparsers) -> None:
    p = subparsers.add_parser("bank", help="import, export, validate and show item banks",
                              description="Work with item-bank files (format cat-prom-bank/1).")
    sub = p.add_subparsers(dest="bank_command", metavar="{import,export,validate,show,report}")
    sub.required = True

    imp = sub.add_parser("import", help="build a bank from a parameter CSV (csv, mirt or catR layout)",
                         description="Build a bank JSON from an item-parameter table. Layouts: csv (item_id,a,b1,b2,..."
                                     " with optional model, stem, content columns), mirt (coef(mod, IRTpars=TRUE, "
                                     "simplify=TRUE)$items written by write.csv) and catr (catR's GRM/GPCM item "
                                     "matrix written by write.csv). See docs/bank-format.md.")
    imp.add_argument("params", metavar="PARAMS.csv")
    imp.add_argument("--format", choices=("csv", "mirt", "catr"), default="csv", help="layout of PARAMS.csv (default csv)")
    imp.add_argument("--out", required=True, metavar="BANK.json", help="bank file to write")
    imp.add_argument("--id", dest="bank_id", help="bank id (default: the file name)")
    imp.add_argument("--name", help="bank name (default: the id)")
    imp.add_argument("--model", choices=("grm", "gpcm"),
                     help="model of items whose row does not say (default grm; catR column names say it)")
    imp.add_argument("--direction", choices=("higher_is_worse", "higher_is_better"), default="higher_is_worse",
                     help="does a higher score mean worse (symptoms, the default) or better (function)?")
    imp.add_argument("--labels", metavar="L0,L1,...",
                     help='response labels shared by every item, one per category, e.g. "Never,Rarely,Sometimes,Often,Always"')
    imp.add_argument("--values", metavar="V0,V1,...",
                     help="response values shared by every item, one per category (default 0..k-1), e.g. 1,2,3,4,5")
    imp.add_argument("--start-item", metavar="ID", help="fixed first item of a CAT on this bank")
    imp.set_defaults(func=_cmd_bank_import)

    exp = sub.add_parser("export", help="write a bank's parameters as CSV (csv, mirt or catR layout)")
    exp.add_argument("bank", metavar="BANK.json")
    exp.add_argument("--format", choices=("csv", "mirt", "catr"), default="csv", help="layout (default csv)")
    exp.add_argument("--out", required=True, metavar="FILE", help="file to write ('-' for standard output)")
    exp.set_defaults(func=_cmd_bank_export)

    val = sub.add_parser("validate", help="check a bank file; print OK with its item count and content hash")
    val.add_argument("bank", metavar="BANK.json")
    val.add_argument("--fix-hash", action="store_true",
                     help="rewrite the file's content_hash to match its content (after a deliberate edit)")
    val.set_defaults(func=_cmd_bank_validate)

    show = sub.add_parser("show", help="human-readable summary of a bank")
    show.add_argument("bank", metavar="BANK.json")
    show.add_argument("--items", action="store_true", help="also list every item with its parameters")
    show.set_defaults(func=_cmd_bank_show)

    rep = sub.add_parser("report", help="HTML report: category curves, item and test information, parameters, fit",
                         description="Write DIR/report.html (plots embedded): category response curves, item and "
                                     "test information, marginal reliability, the parameter table (with SEs when "
                                     "the bank records them) and, with --responses, S-X² item fit on the complete "
                                     "cases of RESP.csv (the layout `score` reads).")
    rep.add_argument("bank", metavar="BANK.json")
    rep.add_argument("--out", required=True, metavar="DIR", help="folder to write report.html into")
    rep.add_argument("--responses", metavar="RESP.csv", help="response data for S-X² item fit")
    rep.set_defaults(func=_cmd_bank_report)


def _cmd_bank_import(args) -> int:
    from .bank_io import read_params_csv
    labels = _split_list(args.labels)
    values = _values_list(args.values)
    bank = read_params_csv(args.params, args.format, model=args.model, bank_id=args.bank_id, name=args.name,
                           direction=args.direction, labels=labels, values=values, start_item=args.start_item)
    try:
        bank.save(args.out)
    except OSError as e:
        raise InvalidDataError(f"cannot write {args.out!r}: {e.strerror}") from None
    _info(f"wrote {args.out}: bank {bank.id!r}, {bank.n_items} items, model {bank.model}, {bank.content_hash}")
    return 0


def _cmd_bank_export(args) -> int:
    from .bank_io import write_params
    bank = _load_bank(args.bank)
    target = sys.stdout if args.out == "-" else args.out
    for w in write_params(bank, target, args.format):
        _info(f"cat-prom: warning: {w}")
    if target is not sys.stdout:
        _info(f"wrote {args.out}: {bank.n_items} items in the {args.format} layout")
    return 0


def _cmd_bank_validate(args) -> int:
    from .bank import ItemBank
    if not args.fix_hash:
        bank = ItemBank.load(args.bank)
        with open(args.bank, encoding="utf-8") as fh:
            had_hash = "content_hash" in json.load(fh)
        print(f"OK {args.bank}: bank {bank.id!r} version {bank.version}, {bank.n_items} items, {bank.content_hash}")
        if not had_hash:
            _info("note: the file has no content_hash; `cat-prom bank validate --fix-hash` adds it")
        return 0
    # --fix-hash: validate everything except the stale hash, then rewrite the file
    try:
        with open(args.bank, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        ItemBank.load(args.bank)  # raises the precise error
        raise
    old = doc.pop("content_hash", None) if isinstance(doc, dict) else None
    bank = ItemBank.from_dict(doc, source=args.bank)
    new = bank.content_hash
    if old == new:
        print(f"OK {args.bank}: bank {bank.id!r} version {bank.version}, {bank.n_items} items, {new} (hash unchanged)")
        return 0
    tmp = args.bank + ".tmp"
    bank.save(tmp)
    os.replace(tmp, args.bank)
    print(f"OK {args.bank}: bank {bank.id!r} version {bank.version}, {bank.n_items} items, {new} "
          f"(content_hash {'was ' + str(old) if old else 'added'})")
    return 0


def _fmt_band(b) -> str:
    if b.min_t is None and b.max_t is None:
        return f"{b.label}: any T"
    if b.min_t is None:
        return f"{b.label}: T < {b.max_t:g}"
    if b.max_t is None:
        return f"{b.label}: T ≥ {b.min_t:g}"
    return f"{b.label}: {b.min_t:g} ≤ T < {b.max_t:g}"


def _cmd_bank_show(args) -> int:
    from collections import Counter
    from .bank import DEMO_DISCLAIMER
    bank = _load_bank(args.bank)
    cats = Counter(int(k) for k in bank.n_cat)
    cat_txt = ", ".join(f"{k} categories × {n}" for k, n in sorted(cats.items()))
    models = Counter(it.model for it in bank.items)
    direction = "higher T = worse (symptom)" if bank.direction == "higher_is_worse" else "higher T = better (function)"
    lines = [
        f"Bank          {bank.id} — {bank.name}",
        f"Version       {bank.version}",
        f"Domain        {bank.domain}" + (f" (recall period: {bank.recall_period})" if bank.recall_period else ""),
        f"Model         {bank.model}" + (f" ({', '.join(f'{m} × {n}' for m, n in sorted(models.items()))})"
                                         if len(models) > 1 else ""),
        f"Items         {bank.n_items}",
        f"Categories    {cat_txt}",
        f"Metric        T = {bank.t_mean:g} + {bank.t_sd:g}·θ; {direction}",
        "Bands         " + ("; ".join(_fmt_band(b) for b in bank.bands) if bank.bands else "(none)"),
        f"Start item    {bank.start_item or '(none: most informative item at the prior mean)'}",
        f"Content hash  {bank.content_hash}",
    ]
    if bank.provenance:
        lines.append("Provenance")
        for k, v in bank.provenance.items():
            lines.append(f"  {k}: {v if isinstance(v, (str, int, float)) else json.dumps(v, ensure_ascii=False)}")
    else:
        lines.append("Provenance    (none recorded)")
    if bank.demo:
        lines.append("")
        lines.append("DEMO BANK: " + (bank.disclaimer or DEMO_DISCLAIMER))
    print("\n".join(lines))
    if args.items:
        print()
        w = max(len(i) for i in bank.ids)
        print(f"{'id':<{w}}  model  {'a':>6}  thresholds / options / stem")
        for it in bank.items:
            thr = " ".join(f"{t:.3f}" for t in it.thresholds)
            opts = ", ".join(f"{v}={lab}" for v, lab in zip(it.values, it.labels))
            extra = ""
            if it.content:
                extra += f"  [content: {', '.join(it.content)}]"
            if it.enemies:
                extra += f"  [enemies: {', '.join(it.enemies)}]"
            if it.exposure_k != 1.0:
                extra += f"  [exposure_k {it.exposure_k:g}]"
            print(f"{it.id:<{w}}  {it.model:<5}  {it.a:6.3f}  b = {thr}{extra}")
            print(f"{'':<{w}}                 options: {opts}")
            print(f"{'':<{w}}                 stem: {it.stem}")
    return 0


# ------------------------------------------------------------------ score
def _register_score(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score a CSV of response patterns (EAP, MAP, ML or WLE)",
        description="Score every row of RESP.csv (header id,<item ids...>; cells hold the bank's response values, "
                    "empty or NA for a missing answer). Writes id,theta,se,t_score,t_se,n_answered,note.")
    p.add_argument("--bank", required=True, metavar="BANK.json")
    p.add_argument("--responses", required=True, metavar="RESP.csv")
    p.add_argument("--method", choices=("eap", "map", "ml", "wle"), default="eap", help="estimator (default eap)")
    p.add_argument("--out", metavar="OUT.csv", help="output file (default: standard output)")
    _add_grid_prior(p)
    p.set_defaults(func=_cmd_score)


NOTE_NO_RESPONSES = "no_responses: no item answered, no score"


def _cmd_score(args) -> int:
    from . import scoring
    from .bank_io import read_responses_csv
    grid, prior = _grid_prior(args)
    bank = _load_bank(args.bank)
    ids, x = read_responses_csv(args.responses, bank)
    if ids:
        res = scoring.score(x, bank, args.method, grid=grid, prior=prior)  # one vectorised call for all rows
        theta, se, n_ans, flags = res.theta, res.se, res.n_answered, res.flags
    else:
        theta = se = np.zeros(0)
        n_ans, flags = np.zeros(0, dtype=int), []
    t = bank.t_mean + bank.t_sd * theta
    tse = bank.t_sd * se
    with _out_stream(args.out) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "theta", "se", "t_score", "t_se", "n_answered", "note"])
        for r, pid in enumerate(ids):
            if n_ans[r] == 0:
                w.writerow([pid, "", "", "", "", 0, NOTE_NO_RESPONSES])
                continue
            w.writerow([pid, _num(theta[r], 6), _num(se[r], 6), _num(t[r], 4), _num(tse[r], 4), int(n_ans[r]),
                        flags[r]])
    if args.out not in (None, "-"):
        n_flag = sum(1 for r in range(len(ids)) if n_ans[r] == 0 or flags[r])
        _info(f"scored {len(ids)} persons with {args.method.upper()} on bank {bank.id!r} → {args.out}"
              + (f" ({n_flag} with a note)" if n_flag else ""))
    return 0


# ------------------------------------------------------------------ score-table
def _register_score_table(subparsers) -> None:
    p = subparsers.add_parser(
        "score-table", help="summed-score to T-score table (Lord–Wingersky EAP[sum])",
        description="EAP[summed score] and its SD for every possible summed score of a fixed form (all the bank's "
                    "items, or --items), by the Lord–Wingersky recursion. The summed score is on the bank's "
                    "response values when every item's values are consecutive integers, else on 0-based categories.")
    p.add_argument("--bank", required=True, metavar="BANK.json")
    p.add_argument("--items", metavar="ID,ID,...", help="the form's items (default: every item of the bank)")
    p.add_argument("--out", metavar="OUT.csv", help="output file (default: standard output)")
    _add_grid_prior(p)
    p.set_defaults(func=_cmd_score_table)


def _sum_offset(items) -> tuple[int, int, str]:
    """(offset, sign, scale): summed value = offset + sign * (sum of 0-based categories)."""
    def step(it):
        v = it.values
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            d = [b - a for a, b in zip(v, v[1:])]
            if all(s == 1 for s in d):
                return 1
            if all(s == -1 for s in d):
                return -1
        return 0
    steps = {step(it) for it in items}
    if steps == {1}:
        return sum(it.values[0] for it in items), 1, "values"
    if steps == {-1}:
        return sum(it.values[0] for it in items), -1, "values"
    return 0, 1, "categories"


def _cmd_score_table(args) -> int:
    from . import scoring
    from .irt import ItemParams
    grid, prior = _grid_prior(args)
    bank = _load_bank(args.bank)
    ids = _split_list(args.items) or list(bank.ids)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidDataError(f"--items lists {dup!r} twice")
    idx = [bank.index(i) for i in ids]  # UnknownItemError names the item
    p = bank.params
    sub = ItemParams(a=p.a[idx], b=p.b[idx], is_gpcm=p.is_gpcm[idx], n_cat=p.n_cat[idx])
    tab = scoring.summed_score_table(sub, grid=grid, prior=prior)
    items = [bank.items[j] for j in idx]
    offset, sign, scale = _sum_offset(items)
    if scale == "categories":
        _info("note: the items' response values are not consecutive integers; summed scores are sums of 0-based "
              "categories")
    rows = list(range(len(tab["sum_score"])))
    if sign < 0:
        rows.reverse()
    with _out_stream(args.out) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sum_score", "theta", "se", "t_score", "t_se", "probability"])
        for r in rows:
            s = offset + sign * int(tab["sum_score"][r])
            th, se = float(tab["theta"][r]), float(tab["se"][r])
            w.writerow([s, _num(th, 6), _num(se, 6), _num(bank.t_mean + bank.t_sd * th, 4),
                        _num(bank.t_sd * se, 4), f"{float(tab['probability'][r]):.6g}"])
    if args.out not in (None, "-"):
        _info(f"wrote {args.out}: {len(rows)} summed scores for {len(ids)} items of bank {bank.id!r}")
    return 0


# ------------------------------------------------------------------ progress bar (stderr)
class _Progress:
    """A one-line text progress bar on stderr, drawn only when stderr is a terminal (and not --quiet)."""

    WIDTH = 28

    def __init__(self, label: str, *, quiet: bool = False, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = tty and not quiet
        self.label = label
        self._last = 0.0
        self._drawn = False
        self._c0 = None

    def _draw(self, frac: float, text: str, force: bool = False) -> None:
        import time
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        frac = min(max(frac, 0.0), 1.0)
        n = int(round(frac * self.WIDTH))
        self.stream.write(f"\r{self.label} [{'#' * n}{'-' * (self.WIDTH - n)}] {text}\033[K")
        self.stream.flush()
        self._drawn = True

    def em(self, cycle: int, loglik: float, change: float, *, max_iter: int, tol: float) -> None:
        """calibrate(progress=...) callback: progress towards max change < tol (log scale) or max_iter."""
        if not self.enabled:
            return
        if self._c0 is None or not math.isfinite(self._c0):
            self._c0 = max(change, tol * 10)
        by_change = math.log(self._c0 / max(change, 1e-300)) / math.log(self._c0 / tol) if self._c0 > tol else 1.0
        frac = 1.0 if change < tol else max(by_change, cycle / max_iter)
        self._draw(frac, f"cycle {cycle:4d}  loglik {loglik:,.2f}  change {change:.2e}", force=change < tol)

    def count(self, done: int, total: int) -> None:
        if self.enabled:
            self._draw(done / max(total, 1), f"{done:,}/{total:,}", force=done >= total)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _utc_now() -> str:
    """UTC time for provenance; honours SOURCE_DATE_EPOCH (reproducible builds)."""
    import datetime as _dt
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        t = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
    else:
        t = _dt.datetime.now(tz=_dt.timezone.utc)
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _software() -> dict:
    import platform
    import scipy
    return {"cat-prom": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _r(x, d=4):
    x = float(x)
    return round(x, d) if math.isfinite(x) else None


# ------------------------------------------------------------------ calibrate
_MAX_RAW_CATEGORIES = 20


def _value_category(lookup: dict, cell: str):
    """The category of a CSV cell via a value->category lookup keyed by text ("3" and "3.0" alike)."""
    k = lookup.get(cell)
    if k is None:
        try:
            f = float(cell)
            k = lookup.get(str(int(f))) if f.is_integer() else None
        except (ValueError, OverflowError):
            pass
    return k


def _read_raw_responses(path: str, *, values=None, anchor=None):
    """Read RESPONSES.csv for calibration.

    Header ``id,<item ids>``; one row per person; empty or NA = not answered.
    Cells of an anchor item (an item of ``anchor``) hold that bank's response
    values. Other cells hold the response values listed by ``values`` (mapped
    to categories by position) or, without ``values``, integers: 0..k-1 are
    taken as categories as they stand, 1..k are shifted down by one (the
    smallest value in the file decides, and is reported).

    Returns
    -------
    person_ids, item_ids, X (n_persons, n_items) float categories with NaN, coding (dict)
    """
    from .bank_io import _MISSING, _check_unique_header, person_ids, read_csv_rows
    name = os.path.basename(path)
    header, rows = read_csv_rows(path)
    if header[0].lower() != "id":
        raise InvalidDataError(f"{name} line 1, column 1: the first column must be 'id' (the person id), got "
                               f"{header[0]!r}; the header is id,<item ids...>", file=path, line=1, column=header[0])
    _check_unique_header(header, name, path)
    item_ids = header[1:]
    for j, h in enumerate(item_ids, start=2):
        if not h:
            raise InvalidDataError(f"{name} line 1, column {j}: empty item id; every item column needs a name",
                                   file=path, line=1, column=j)
    if not item_ids:
        raise InvalidDataError(f"{name} line 1: no item columns; the header is id,<item ids...>", file=path, line=1)
    if not rows:
        raise InvalidDataError(f"{name}: no persons (the file has a header but no rows)", file=path)
    n, m = len(rows), len(item_ids)
    lines = [line for line, _ in rows]
    pids = person_ids(rows, name, path)
    table = np.char.strip(np.array([cells[1:] for _, cells in rows], dtype=str).reshape(n, m))
    X = np.full((n, m), np.nan)
    anchor_ids = set(anchor.ids) if anchor is not None else set()
    first_bad = None  # (row, col, message)

    def note_bad(r, c, msg):
        nonlocal first_bad
        if first_bad is None or (r, c) < first_bad[:2]:
            first_bad = (r, c, msg)

    lookup_values = {str(v): k for k, v in enumerate(values)} if values is not None else None
    for c, iid in enumerate(item_ids):
        uniq, inv = np.unique(table[:, c], return_inverse=True)
        inv = inv.reshape(-1)
        cats = np.full(uniq.shape[0], np.nan)
        for u_i, u in enumerate(uniq.tolist()):
            if u in _MISSING:
                continue
            if iid in anchor_ids:
                it = anchor.item(iid)
                k = _value_category({str(v): k for k, v in enumerate(it.values)}, u)
                if k is None:
                    r = int(np.flatnonzero(inv == u_i)[0])
                    note_bad(r, c, f"{u!r} is not a response value of anchor item {iid!r} in bank {anchor.id!r}, "
                                   f"which takes {', '.join(str(v) for v in it.values)}")
                    continue
                cats[u_i] = k
            elif lookup_values is not None:
                k = _value_category(lookup_values, u)
                if k is None:
                    r = int(np.flatnonzero(inv == u_i)[0])
                    note_bad(r, c, f"{u!r} is not one of the response values given by --values "
                                   f"({', '.join(str(v) for v in values)})")
                    continue
                cats[u_i] = k
            else:
                try:
                    f = float(u)
                    ok = math.isfinite(f) and f.is_integer()
                except ValueError:
                    ok = False
                if not ok:
                    r = int(np.flatnonzero(inv == u_i)[0])
                    note_bad(r, c, f"{u!r} is not a whole number; cells hold integer response values (0..k-1 or "
                                   f"1..k), or the values listed by --values; leave a missing answer empty or NA")
                    continue
                cats[u_i] = int(f)
        X[:, c] = cats[inv]
    if first_bad is not None:
        r, c, msg = first_bad
        raise InvalidDataError(f"{name} line {lines[r]}, column {item_ids[c]!r}: {msg}", file=path, line=lines[r],
                               column=item_ids[c])
    coding: dict = {}
    new_cols = [c for c, iid in enumerate(item_ids) if iid not in anchor_ids]
    if values is not None:
        coding = {"rule": "cells hold the response values given by --values; category = position in that list",
                  "values": list(values)}
    elif new_cols:
        sub = X[:, new_cols]
        if np.isnan(sub).all():
            lo = hi = 0
        else:
            lo, hi = int(np.nanmin(sub)), int(np.nanmax(sub))
        if lo not in (0, 1):
            r, c = np.argwhere(X[:, new_cols] == lo)[0]
            c = new_cols[c]
            raise InvalidDataError(
                f"{name} line {lines[r]}, column {item_ids[c]!r}: response value {lo}; without --values the cells "
                f"must be categories 0..k-1 or values 1..k (the smallest value in the file decides). Pass "
                f"--values to list the response values in order, and leave missing answers empty or NA "
                f"(not {lo})", file=path, line=lines[r], column=item_ids[c])
        k = hi - lo + 1
        if k > _MAX_RAW_CATEGORIES:
            r, c = np.argwhere(X[:, new_cols] == hi)[0]
            c = new_cols[c]
            raise InvalidDataError(f"{name} line {lines[r]}, column {item_ids[c]!r}: response value {hi} means "
                                   f"{k} categories; at most {_MAX_RAW_CATEGORIES} are supported",
                                   file=path, line=lines[r], column=item_ids[c])
        X[:, new_cols] -= lo
        vals = list(range(lo, hi + 1))
        coding = {"rule": ("cells are 0-based categories 0..k-1" if lo == 0
                           else "cells are response values 1..k; category = value - 1"),
                  "values": vals}
    if anchor_ids & set(item_ids):
        coding["anchor_items"] = f"cells of anchor items hold bank {anchor.id!r}'s response values"
    return pids, item_ids, X, coding


def _read_stems(path: str, item_ids) -> dict:
    from .bank_io import read_csv_rows
    name = os.path.basename(path)
    header, rows = read_csv_rows(path)
    lower = [h.lower() for h in header]
    if lower != ["item_id", "stem"]:
        raise InvalidDataError(f"{name} line 1: the header must be item_id,stem (got {','.join(header)})",
                               file=path, line=1)
    known = set(item_ids)
    out, seen = {}, {}
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


def _register_calibrate(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="calibrate an item bank from response data (MML-EM, GRM or GPCM)",
        description="Estimate item parameters from RESPONSES.csv by marginal maximum likelihood (Bock-Aitkin EM; "
                    "missing answers are left out of each person's likelihood, so CAT-collected data are fine) "
                    "and write a bank file. RESPONSES.csv: header id,<item ids>, one row per person, empty or NA "
                    "for an unanswered item. Cells are integer response values: 0..k-1 are taken as categories, "
                    "1..k are shifted to 0..k-1 (the smallest value in the file decides; the summary says which), "
                    "or give --values. Exit status: 0 ok, 1 bank written but some items did not converge "
                    "(unless --allow-nonconverged), 2 bad input. See docs/researchers.md.")
    p.add_argument("responses", metavar="RESPONSES.csv")
    p.add_argument("--model", choices=("grm", "gpcm"), default="grm", help="item model (default grm)")
    p.add_argument("--out", required=True, metavar="BANK.json", help="bank file to write")
    p.add_argument("--stems", metavar="STEMS.csv", help="item wording: CSV with header item_id,stem")
    g = p.add_argument_group("bank metadata")
    g.add_argument("--id", dest="bank_id", help="bank id (default: the file name of --out)")
    g.add_argument("--name", help="bank name (default: the id)")
    g.add_argument("--domain", help="domain measured (default: the id; with --anchor, the anchor bank's)")
    g.add_argument("--bank-version", default="1", metavar="V", help="version string of the bank (default 1)")
    g.add_argument("--direction", choices=("higher_is_worse", "higher_is_better"),
                   help="does a higher score mean worse (symptoms, the default) or better (function)? "
                        "With --anchor, the anchor bank's direction")
    g.add_argument("--values", metavar="V0,V1,...",
                   help="the response values in category order, shared by every item (e.g. 1,2,3,4,5 or "
                        "never,rarely,sometimes,often,always); cells must hold these")
    g.add_argument("--labels", metavar="L0,L1,...", help="response labels shared by every item, one per category")
    g.add_argument("--start-item", metavar="ID", help="fixed first item of a CAT on this bank")
    c = p.add_argument_group("estimation")
    c.add_argument("--anchor", metavar="OLD_BANK.json",
                   help="fixed-anchor calibration: items of OLD_BANK keep its parameters; the others (and the "
                        "latent mean and SD) are estimated on its metric")
    c.add_argument("--collapse-sparse", action="store_true",
                   help="merge categories with fewer than --min-count responses into a neighbour")
    c.add_argument("--min-count", type=float, default=5, metavar="N",
                   help="a category with fewer responses is reported as sparse (default 5)")
    c.add_argument("--quad-points", type=int, default=61, metavar="N",
                   help="quadrature nodes on [-6, 6] (default 61)")
    c.add_argument("--max-iter", type=int, default=500, metavar="N", help="maximum EM cycles (default 500)")
    c.add_argument("--tol", type=float, default=1e-4, help="convergence: largest parameter change (default 1e-4)")
    c.add_argument("--slope-prior", type=float, nargs=2, metavar=("MU", "SD"),
                   help="log-normal prior on the slopes, log(a) ~ N(MU, SD²) (e.g. 0 0.5 for thin data)")
    c.add_argument("--no-se", action="store_true", help="skip standard errors (faster on very large data)")
    p.add_argument("--report", metavar="DIR", help="also write the HTML calibration report into DIR")
    p.add_argument("--allow-nonconverged", action="store_true",
                   help="exit 0 even when some items did not converge (the bank is written either way)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary (errors still shown)")
    p.set_defaults(func=_cmd_calibrate)


def _collapsed_options(values, labels, mapping):
    """Options of an item whose categories were merged: value of the lowest member, joined labels."""
    groups: dict = {}
    for k, g in enumerate(mapping):
        groups.setdefault(int(g), []).append(k)
    return [{"value": values[ks[0]], "label": " / ".join(str(labels[k]) for k in ks)}
            for _, ks in sorted(groups.items())]


def _cmd_calibrate(args) -> int:
    from . import calibration as cal
    from .bank import ItemBank
    from .errors import CalibrationError

    if args.quad_points < 5 or args.quad_points > 1001:
        raise InvalidDataError(f"--quad-points must be between 5 and 1001, got {args.quad_points}")
    if args.max_iter < 1:
        raise InvalidDataError(f"--max-iter must be >= 1, got {args.max_iter}")
    if not (math.isfinite(args.tol) and args.tol > 0):
        raise InvalidDataError(f"--tol must be > 0, got {args.tol}")
    if not (math.isfinite(args.min_count) and args.min_count >= 0):
        raise InvalidDataError(f"--min-count must be >= 0, got {args.min_count}")
    values = _values_list(args.values)
    labels = _split_list(args.labels)
    if values is not None:
        if len(values) < 2:
            raise InvalidDataError("--values needs at least two response values")
        if len({str(v) for v in values}) != len(values):
            raise InvalidDataError(f"--values lists a value twice: {args.values!r}")
    anchor = _load_bank(args.anchor) if args.anchor else None
    pids, item_ids, X, coding = _read_raw_responses(args.responses, values=values, anchor=anchor)
    fname = os.path.basename(args.responses)
    n_persons, n_items = X.shape
    anchored = [i for i in item_ids if anchor is not None and i in set(anchor.ids)]
    if anchor is not None and not anchored:
        raise InvalidDataError(f"--anchor: none of the item columns of {fname} is an item of bank {anchor.id!r}; "
                               f"fixed-anchor calibration needs common item ids")
    if anchor is not None and len(anchored) == n_items:
        raise InvalidDataError(f"--anchor: every item of {fname} is in bank {anchor.id!r}; there is nothing new to "
                               f"calibrate")
    new_k = len(coding["values"]) if "values" in coding else None
    if labels is not None and new_k is not None and len(labels) != new_k:
        raise InvalidDataError(f"--labels gives {len(labels)} labels but the items have {new_k} categories "
                               f"({', '.join(map(str, coding['values']))}); give one label per category")
    stems = _read_stems(args.stems, item_ids) if args.stems else {}
    if args.start_item is not None and args.start_item not in item_ids:
        raise InvalidDataError(f"--start-item {args.start_item!r} is not an item column of {fname}")
    anchor_set = set(anchored)
    n_cat = [int(anchor.n_cat[anchor.index(i)]) if i in anchor_set else new_k for i in item_ids]
    models = [anchor.item(i).model if i in anchor_set else args.model for i in item_ids]

    quiet = args.quiet
    say = (lambda *a, **k: None) if quiet else print
    bar = _Progress("EM", quiet=quiet)
    try:
        res = cal.calibrate(X, models, ids=item_ids, n_categories=n_cat, fixed=anchor,
                            n_quad=args.quad_points, max_iter=args.max_iter, tol=args.tol, min_count=args.min_count,
                            collapse_sparse=args.collapse_sparse,
                            slope_prior=tuple(args.slope_prior) if args.slope_prior else None, se=not args.no_se,
                            progress=lambda c, ll, ch: bar.em(c, ll, ch, max_iter=args.max_iter, tol=args.tol))
    except CalibrationError as e:
        e.message = f"{fname}: {e.message}"
        raise
    finally:
        bar.close()

    # ---- item fit (complete cases) on the data as calibrated (collapsed categories recoded)
    Xf = X.copy()
    col = {iid: j for j, iid in enumerate(item_ids)}
    for cc in res.collapsed:
        j = col[cc.item_id]
        m = np.asarray(cc.mapping)
        ok = ~np.isnan(Xf[:, j])
        Xf[ok, j] = m[Xf[ok, j].astype(int)]
    fit, fit_note = None, None
    n_complete = int((~np.isnan(Xf)).all(axis=1).sum())
    if n_complete == 0:
        fit_note = "no person answered every item (CAT or planned-missing data); S-X² needs complete cases"
    else:
        try:
            fit = cal.item_fit_sx2(Xf, res, n_estimated=np.where(res.fixed, 0, res.n_categories))
        except CalibrationError as e:  # pragma: no cover - guarded above
            fit_note = e.message
    misfit = []
    if fit is not None and fit.n_persons < 200:
        fit_note = f"S-X² rests on only {fit.n_persons} complete cases; treat it as indicative"
    if fit is not None:
        misfit = [(fit.ids[j], float(fit.s_x2[j]), int(fit.df[j]), float(fit.p_value[j]))
                  for j in range(len(fit.ids)) if np.isfinite(fit.p_value[j]) and fit.p_value[j] < 0.01]
    rel = cal.marginal_reliability(res, mean=res.latent_mean, sd=res.latent_sd)

    # ---- the bank
    bid = args.bank_id or os.path.splitext(os.path.basename(args.out))[0] or "bank"
    direction = args.direction or (anchor.direction if anchor is not None else "higher_is_worse")
    n_obs = int((~np.isnan(X)).sum())
    nonconv = [i.item_id for i in res.issues if i.kind == "not_converged"]
    settings = {"model": args.model, "quadrature": f"{args.quad_points} equally spaced nodes on [-6, 6]",
                "max_iter": args.max_iter, "tol": args.tol, "min_count": args.min_count,
                "collapse_sparse": bool(args.collapse_sparse),
                "slope_prior": list(args.slope_prior) if args.slope_prior else None,
                "standard_errors": "XPD (cross-product of person scores)" if not args.no_se else None}
    calib = {"loglik": _r(res.loglik, 3), "em_cycles": int(res.n_iter), "converged": bool(res.converged),
             "marginal_reliability": _r(rel), "latent_mean": _r(res.latent_mean), "latent_sd": _r(res.latent_sd),
             "nonconverged_items": nonconv, "issues": [i.message for i in res.issues]}
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
            iid: {"a": _r(res.se_a[j]), "thresholds": [_r(v) for v in res.se_b[j, : res.n_categories[j] - 1]]}
            for j, iid in enumerate(res.ids) if not res.fixed[j]}
    prov = {
        "method": "marginal maximum likelihood, EM algorithm (Bock & Aitkin, 1981); cat-prom calibrate",
        "model": ("mixed" if len(set(models)) > 1 else models[0]) + " (D = 1)",
        "sample": {"file": fname, "n_persons": int(res.n_persons), "n_items": n_items, "n_responses": n_obs,
                   "missing_share": _r(1 - n_obs / (n_persons * n_items))},
        "response_coding": coding,
        "date": _utc_now(),
        "software": _software(),
        "settings": settings,
        "calibration": calib,
    }
    if anchor is not None:
        prov["anchor"] = {"bank": anchor.id, "version": anchor.version, "content_hash": anchor.content_hash,
                          "items": anchored, "method": "fixed-parameter calibration with the latent mean and SD "
                                                       "estimated (Kim, 2006, multiple weights updating)"}
    bank0 = res.to_bank(id=bid, name=args.name or bid, direction=direction, provenance=prov)
    doc = bank0.to_dict()
    doc.pop("content_hash", None)
    doc["version"] = args.bank_version
    doc["domain"] = args.domain or (anchor.domain if anchor is not None else bid)
    doc["start_item"] = args.start_item
    if anchor is not None:
        doc["metric"] = {"t_mean": anchor.t_mean, "t_sd": anchor.t_sd, "direction": direction}
        adoc = {it["id"]: it for it in anchor.to_dict()["items"]}
        ids_here = set(item_ids)
    collapsed = {cc.item_id: cc.mapping for cc in res.collapsed}
    for it in doc["items"]:
        iid = it["id"]
        if iid in anchor_set:
            a_it = adoc[iid]
            it["stem"] = stems.get(iid, a_it.get("stem", iid))
            it["options"] = a_it["options"]
            for key in ("content",):
                if a_it.get(key):
                    it[key] = a_it[key]
            en = [x for x in a_it.get("enemies") or [] if x in ids_here]
            if en:
                it["enemies"] = en
            continue
        it["stem"] = stems.get(iid, iid)
        vals = list(coding["values"])
        labs = list(labels) if labels is not None else [str(v) for v in vals]
        if iid in collapsed:
            it["options"] = _collapsed_options(vals, labs, collapsed[iid])
        else:
            it["options"] = [{"value": v, "label": lab} for v, lab in zip(vals, labs)][: len(it["thresholds"]) + 1]
    bank = ItemBank.from_dict(doc, source=args.out)
    try:
        bank.save(args.out)
    except OSError as e:
        raise InvalidDataError(f"cannot write {args.out!r}: {e.strerror}") from None

    # ---- summary
    say(f"Calibrated {n_items} items ({prov['model'].split(' ')[0]}) on {res.n_persons} persons from {fname}: "
        f"{n_obs:,} responses, {1 - n_obs / (n_persons * n_items):.1%} missing")
    say(f"  response coding       {coding['rule']}" + (f" (values {coding['values'][0]}..{coding['values'][-1]})"
                                                       if values is None and 'values' in coding else ""))
    say(f"  EM                    {'converged' if res.converged else 'NOT converged'} after {res.n_iter} cycles "
        f"({res.elapsed_s:.1f} s); log-likelihood {res.loglik:,.3f}")
    if anchor is not None:
        say(f"  anchors               {len(anchored)} items held at their parameters in bank {anchor.id!r}; latent "
            f"N({res.latent_mean:.3f}, {res.latent_sd:.3f}²) on its metric")
    say(f"  marginal reliability  {rel:.3f}")
    if res.sparse_categories:
        sp = ", ".join(f"{s.item_id} cat {s.category} (n={s.count:g})" for s in res.sparse_categories[:8])
        more = f" and {len(res.sparse_categories) - 8} more" if len(res.sparse_categories) > 8 else ""
        say(f"  sparse categories     {len(res.sparse_categories)} with < {args.min_count:g} responses: {sp}{more}")
    else:
        say(f"  sparse categories     none (every category has >= {args.min_count:g} responses)")
    for cc in res.collapsed:
        vals = coding.get("values") or list(range(len(cc.mapping)))
        merged = []
        for g in sorted(set(cc.mapping)):
            vs = [vals[k] for k, gg in enumerate(cc.mapping) if gg == g]
            if len(vs) > 1:
                merged.append(f"{'+'.join(map(str, vs))} -> {vs[0]}")
        say(f"  collapsed             {cc.item_id}: values {', '.join(merged)} (the bank lists the merged category "
            f"under its lowest value; recode answers the same way before scoring)")
    if fit is not None:
        if misfit:
            say(f"  item fit (S-X²)       {len(misfit)} of {len(fit.ids)} items misfit at p < 0.01 "
                f"({fit.n_persons} complete cases): "
                + ", ".join(f"{i} (S-X² {s:.1f}, df {d}, p {p:.2g})" for i, s, d, p in misfit))
        else:
            say(f"  item fit (S-X²)       no item misfits at p < 0.01 ({fit.n_persons} complete cases)")
    else:
        say(f"  item fit (S-X²)       not computed: {fit_note}")
    if fit is not None and fit_note:
        say(f"  note                  {fit_note}")
    if nonconv:
        say(f"  not converged         {len(nonconv)} item(s): {', '.join(nonconv)}")
    other = [i for i in res.issues if i.kind != "not_converged"]
    for i in other:
        say(f"  warning               {i.message}")
    say(f"wrote {args.out}: bank {bank.id!r}, {bank.n_items} items, {bank.content_hash}")
    if args.report:
        from .report import write_calibration_report
        notes = []
        if fit_note and fit is None:
            notes.append(f"Item fit not computed: {fit_note}.")
        out = write_calibration_report(bank, args.report, result=res, fit=fit,
                                       summary=[("Response file", fname), ("Response coding", coding["rule"])],
                                       notes=notes)
        say(f"wrote {out['report']}")
    if nonconv:
        _info(f"cat-prom: {'warning: ' if args.allow_nonconverged else ''}{len(nonconv)} item(s) did not converge "
              f"after {res.n_iter} EM cycles: {', '.join(nonconv)}. The bank was written, but check these items "
              f"(raise --max-iter, --collapse-sparse, --slope-prior 0 0.5)"
              + ("" if args.allow_nonconverged else " or pass --allow-nonconverged"))
        if not args.allow_nonconverged:
            return 1
    elif not res.converged:
        _info(f"cat-prom: the EM did not converge in {res.n_iter} cycles (the latent distribution was still moving); "
              f"raise --max-iter or pass --allow-nonconverged")
        if not args.allow_nonconverged:
            return 1
    return 0


# ------------------------------------------------------------------ bank report
def _cmd_bank_report(args) -> int:
    from . import calibration as cal
    from .errors import CalibrationError
    from .report import write_calibration_report
    bank = _load_bank(args.bank)
    fit, notes = None, []
    if args.responses:
        from .bank_io import read_responses_csv
        _, x = read_responses_csv(args.responses, bank)
        present = ~np.isnan(x).all(axis=0)
        if not present.all():
            notes.append(f"Item fit only for the {int(present.sum())} items in {os.path.basename(args.responses)}; "
                         f"summed scores are over those items.")
        from .irt import ItemParams
        p = bank.params
        idx = np.flatnonzero(present)
        sub = ItemParams(a=p.a[idx], b=p.b[idx], is_gpcm=p.is_gpcm[idx], n_cat=p.n_cat[idx])
        try:
            fit = cal.item_fit_sx2(x[:, idx], sub, ids=[bank.ids[i] for i in idx], n_estimated=p.n_cat[idx])
        except CalibrationError as e:
            notes.append(f"Item fit not computed: {e.message}")
    if fit is not None and fit.n_persons < 200:
        notes.append(f"S-X² rests on only {fit.n_persons} complete cases; treat the fit table as indicative.")
    out = write_calibration_report(bank, args.out, fit=fit, notes=notes)
    _info(f"wrote {out['report']}: bank {bank.id!r}, {bank.n_items} items, marginal reliability "
          f"{out['marginal_reliability']:.3f}"
          + (f"; {len(out['misfit'])} item(s) misfit at p < 0.01" + (f": {', '.join(out['misfit'])}"
                                                                    if out['misfit'] else "")
             if fit is not None else ""))
    for n in notes:
        _info("note: " + n)
    return 0


# ------------------------------------------------------------------ link
def _register_link(subparsers) -> None:
    p = subparsers.add_parser(
        "link", help="put a bank on another bank's metric (Stocking-Lord or mean-sigma linking)",
        description="Estimate the linking constants A, B (θ_old = A·θ_new + B) from anchor items common to "
                    "NEW_BANK and OLD_BANK, and write NEW_BANK's items on OLD_BANK's metric: a* = a/A, "
                    "b* = A·b + B. The linked bank takes OLD_BANK's T metric and records the linking in its "
                    "provenance.")
    p.add_argument("new", metavar="NEW_BANK.json")
    p.add_argument("--to", required=True, metavar="OLD_BANK.json", help="the bank whose metric to adopt")
    p.add_argument("--method", choices=("stocking-lord", "mean-sigma"), default="stocking-lord",
                   help="linking method (default stocking-lord)")
    p.add_argument("--anchors", metavar="ID,ID,...", help="anchor items (default: every item id in both banks)")
    p.add_argument("--out", required=True, metavar="LINKED.json", help="linked bank to write")
    p.set_defaults(func=_cmd_link)


def _cmd_link(args) -> int:
    from . import calibration as cal
    from .bank import ItemBank
    from .errors import CalibrationError
    new, old = _load_bank(args.new), _load_bank(args.to)
    anchors = _split_list(args.anchors)
    common = [i for i in new.ids if i in set(old.ids)]
    if anchors is None:
        anchors = common
        if len(anchors) < 2:
            raise InvalidDataError(f"banks {new.id!r} and {old.id!r} share {len(anchors)} item id(s); linking needs "
                                   f"at least 2 common anchor items (or name them with --anchors)")
    else:
        for a in anchors:
            if a not in set(new.ids):
                raise InvalidDataError(f"--anchors: {a!r} is not an item of {os.path.basename(args.new)} "
                                       f"(bank {new.id!r})")
            if a not in set(old.ids):
                raise InvalidDataError(f"--anchors: {a!r} is not an item of {os.path.basename(args.to)} "
                                       f"(bank {old.id!r})")
        if len(set(anchors)) != len(anchors):
            raise InvalidDataError("--anchors lists an item twice")
    fn = cal.link_stocking_lord if args.method == "stocking-lord" else cal.link_mean_sigma
    try:
        link = fn(new, old, anchors)
    except CalibrationError as e:
        raise InvalidDataError(f"linking {new.id!r} to {old.id!r}: {e.message}") from None
    doc = new.to_dict()
    doc.pop("content_hash", None)
    for j, it in enumerate(doc["items"]):
        k = int(new.n_cat[j])
        it["a"] = float(link.a[j])
        it["thresholds"] = [float(t) for t in link.b[j, : k - 1]]
    if new.direction != old.direction:
        _info(f"cat-prom: warning: {new.id!r} says {new.direction} but {old.id!r} says {old.direction}; the linked "
              f"bank takes {old.id!r}'s metric ({old.direction})")
    doc["metric"] = {"t_mean": old.t_mean, "t_sd": old.t_sd, "direction": old.direction}
    prov = dict(doc.get("provenance") or {})
    prov["linking"] = {
        "method": {"stocking-lord": "Stocking-Lord (1983) test characteristic curve linking, 41 nodes on [-4, 4], "
                                    "N(0, 1) weights",
                   "mean-sigma": "mean-sigma (Marco, 1977) on the anchors' pooled thresholds"}[args.method],
        "A": link.A, "B": link.B, "transformation": "theta_old = A * theta_new + B; a* = a / A; b* = A * b + B",
        "criterion": link.criterion, "anchors": list(link.anchors),
        "to": {"bank": old.id, "version": old.version, "content_hash": old.content_hash},
        "from": {"bank": new.id, "version": new.version, "content_hash": new.content_hash},
        "date": _utc_now(), "software": _software(),
    }
    doc["provenance"] = prov
    out_bank = ItemBank.from_dict(doc, source=args.out)
    try:
        out_bank.save(args.out)
    except OSError as e:
        raise InvalidDataError(f"cannot write {args.out!r}: {e.strerror}") from None
    print(f"Linked {new.id!r} ({new.n_items} items) to the metric of {old.id!r} by {args.method}")
    print(f"  A = {link.A:.6f}   B = {link.B:.6f}   (θ_old = A·θ_new + B)" +
          (f"   criterion {link.criterion:.3g}" if args.method == "stocking-lord" else ""))
    print(f"  anchors ({len(link.anchors)}): {', '.join(link.anchors)}")
    w = max(6, *(len(i) for i in link.anchors))
    print(f"  {'anchor':<{w}}  {'a old':>7} {'a linked':>8}  max |Δb|")
    for iid in link.anchors:
        jn, jo = new.index(iid), old.index(iid)
        k = int(new.n_cat[jn]) - 1
        db = float(np.max(np.abs(link.b[jn, :k] - old.b[jo, :k])))
        print(f"  {iid:<{w}}  {old.a[jo]:7.3f} {link.a[jn]:8.3f}  {db:.3f}")
    print(f"wrote {args.out}: bank {out_bank.id!r}, {out_bank.n_items} items, {out_bank.content_hash}")
    return 0


# ------------------------------------------------------------------ simulate
def _register_simulate(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate CATs on a bank (Monte Carlo or post-hoc) and report length, precision, exposure",
        description="Run the design's CAT for many simulees at once. Monte Carlo: --n simulees with true θ drawn "
                    "from N(--theta-mean, --theta-sd) (default: the design's prior); post-hoc: --responses FULL.csv "
                    "(the layout `score` reads: id,<item ids>, the bank's response values), each simulee answering "
                    "as recorded. DIR gets simulees.csv (id,theta,se,n_items,items,stop_reason[,true_theta]"
                    "[,full_bank_theta]), summary.json, report.html and PNG plots.")
    p.add_argument("--bank", required=True, metavar="BANK.json")
    p.add_argument("--design", metavar="DESIGN.json", help="CAT design (default: the PROMIS default design)")
    p.add_argument("--n", type=int, metavar="N", help="Monte Carlo: number of simulees")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (same seed, same result)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV, summary and report")
    p.add_argument("--responses", metavar="FULL.csv", help="post-hoc simulation from recorded responses")
    p.add_argument("--theta-mean", type=float, metavar="M", help="mean of the true θ distribution (Monte Carlo)")
    p.add_argument("--theta-sd", type=float, metavar="S", help="SD of the true θ distribution (Monte Carlo)")
    p.add_argument("--derive-exposure", type=float, metavar="R_MAX",
                   help="derive Sympson-Hetter exposure parameters for a maximum exposure rate R_MAX by iterated "
                        "Monte Carlo simulation (--n simulees, default 5000, true θ as for Monte Carlo), write "
                        "DIR/bank-with-exposure.json, and run the simulation with them")
    p.add_argument("--sh-iterations", type=int, default=20, metavar="N",
                   help="maximum Sympson-Hetter rounds (default 20)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.set_defaults(func=_cmd_simulate)


def _read_design(path: str | None):
    from .design import Design
    if path is None:
        return Design()
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as e:
        raise InvalidDataError(f"design file {path!r} is not valid JSON: {e.msg} at line {e.lineno} column "
                               f"{e.colno}") from None
    except UnicodeDecodeError:
        raise InvalidDataError(f"design file {path!r} is not UTF-8 text") from None
    from .errors import InvalidDesignError
    try:
        return Design.from_dict(doc)
    except InvalidDesignError as e:
        e.message = f"{os.path.basename(path)}: {e.message}"
        raise


def _cmd_simulate(args) -> int:
    from .simulation import simulate, sympson_hetter
    bank = _load_bank(args.bank)
    design = _read_design(args.design)
    quiet = args.quiet
    say = (lambda *a, **k: None) if quiet else print
    post_hoc = args.responses is not None
    if post_hoc and (args.theta_mean is not None or args.theta_sd is not None):
        raise InvalidDataError("--theta-mean/--theta-sd are for Monte Carlo simulation; post-hoc simulation takes "
                               "its simulees from --responses")
    if not post_hoc and args.n is None:
        raise InvalidDataError("give --n (Monte Carlo simulees) or --responses FULL.csv (post-hoc simulation)")
    if args.n is not None and not 1 <= args.n <= 10_000_000:
        raise InvalidDataError(f"--n must be between 1 and 10000000, got {args.n}")
    if args.theta_sd is not None and not (math.isfinite(args.theta_sd) and args.theta_sd > 0):
        raise InvalidDataError(f"--theta-sd must be > 0, got {args.theta_sd}")
    if args.theta_mean is not None and not math.isfinite(args.theta_mean):
        raise InvalidDataError(f"--theta-mean must be finite, got {args.theta_mean}")
    if args.derive_exposure is not None and not 0 < args.derive_exposure <= 1:
        raise InvalidDataError(f"--derive-exposure must be in (0, 1], got {args.derive_exposure}")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise InvalidDataError(f"cannot create {args.out!r}: {e.strerror}") from None
    ss = np.random.SeedSequence(args.seed)
    theta_seq, sh_seq, sim_seq = ss.spawn(3)
    theta = None
    if not post_hoc and (args.theta_mean is not None or args.theta_sd is not None):
        mu = args.theta_mean if args.theta_mean is not None else design.prior["mean"]
        sd = args.theta_sd if args.theta_sd is not None else design.prior["sd"]
        theta = np.random.default_rng(theta_seq).normal(mu, sd, size=args.n)
    sim_seed = int(sim_seq.generate_state(1)[0]) if args.seed is not None else None

    if args.derive_exposure is not None:
        if design.start in ("auto", "bank") and bank.start_item is not None:
            _info(f"cat-prom: warning: the design starts every CAT with the bank's start item "
                  f"{bank.start_item!r}, whose exposure cannot be controlled; use \"start\": \"max_info\" in the "
                  f"design to control it")
        sh_theta = theta
        n_sh = args.n if args.n is not None else 5000
        sh_seed = int(sh_seq.generate_state(1)[0]) if args.seed is not None else None
        bank, info = sympson_hetter(bank, design, n=n_sh, r_max=args.derive_exposure,
                                    iterations=args.sh_iterations, seed=sh_seed, theta=sh_theta, full_output=True)
        doc = bank.to_dict()
        doc.pop("content_hash", None)
        prov = dict(doc.get("provenance") or {})
        prov["exposure_control"] = {
            "method": "Sympson-Hetter (1985), iterated simulation (cat-prom simulate --derive-exposure)",
            "r_max": args.derive_exposure, "simulees_per_round": n_sh, "rounds": len(info["history"]),
            "max_exposure": _r(info["max_exposure"]), "seed": args.seed, "design": design.to_dict(),
            "date": _utc_now(), "software": _software()}
        doc["provenance"] = prov
        from .bank import ItemBank
        bank = ItemBank.from_dict(doc)
        sh_path = os.path.join(args.out, "bank-with-exposure.json")
        bank.save(sh_path)
        h = info["history"]
        say(f"Sympson-Hetter: {len(h)} rounds; max exposure {h[0]['max_exposure']:.3f} (round 1) -> "
            f"{info['max_exposure']:.3f} (target {args.derive_exposure:g}); "
            f"{int((np.asarray(info['exposure_k']) < 1).sum())} items with k < 1")
        mean_len = h[-1]["mean_length"]
        if info["max_exposure"] > args.derive_exposure + 0.01:
            floor = mean_len / bank.n_items
            _info(f"cat-prom: warning: the target exposure rate {args.derive_exposure:g} was not reached (best "
                  f"{info['max_exposure']:.3f})" + (
                      f"; with {mean_len:.1f} items per CAT on a {bank.n_items}-item bank the average exposure is "
                      f"already {floor:.2f}, so no R_MAX below that is attainable" if floor > args.derive_exposure
                      else "; raise --sh-iterations or R_MAX"))
        say(f"wrote {sh_path}")
        design = design.merged({"exposure": {"method": "sympson_hetter"}})

    bar = _Progress("CAT", quiet=quiet)
    try:
        if post_hoc:
            from .bank_io import read_responses_csv
            ids, x = read_responses_csv(args.responses, bank)
            if not ids:
                raise InvalidDataError(f"{os.path.basename(args.responses)}: no persons (the file has a header but "
                                       f"no rows)")
            res = simulate(bank, design, responses=x, ids=ids, n=args.n, seed=sim_seed, progress=bar.count)
        else:
            res = simulate(bank, design, n=None if theta is not None else args.n, theta=theta, seed=sim_seed,
                           progress=bar.count)
    finally:
        bar.close()
    res.seed = args.seed
    paths = res.write_report(args.out)
    s = res.summary()
    tl, ex = s["test_length"], s["exposure"]

    def f(v, d=3):
        return "–" if v is None else f"{v:.{d}f}"

    say(f"{res.mode.replace('_', '-')} simulation: {s['n']:,} simulees, bank {bank.id!r} ({bank.n_items} items)"
        + (f", compared with {s['reference'].replace('_', ' ')}" if s["reference"] else ""))
    rows = [("bias", f(s["bias"])), ("RMSE", f(s["rmse"])), ("correlation", f(s["correlation"])),
            ("test length mean (SD)", f"{f(tl['mean'], 2)} ({f(tl['sd'], 2)})"),
            ("test length median / p90", f"{f(tl['median'], 0)} / {f(tl['p90'], 0)}"),
            ("mean SE", f(s["se"]["mean"]))]
    if "share_at_or_below_target" in s["se"]:
        rows.append((f"SE <= {design.se_target:g}", f"{s['se']['share_at_or_below_target']:.1%}"))
    rows += [("max exposure rate", f(ex["max"])), ("items never used", f"{ex['share_never_used']:.1%}"),
             ("overlap rate", f(ex["overlap_rate"])),
             ("stop reasons", ", ".join(f"{k} {v:,}" for k, v in s["stop_reasons"].items() if v))]
    if s.get("cats_per_second"):
        rows.append(("CATs per second", f"{s['cats_per_second']:,.0f}"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        say(f"  {k:<{w}}  {v}")
    say(f"  {'θ band':<{w}}  n / mean SE / mean length / RMSE")
    for b in s["by_theta_band"]:
        if b["n"]:
            say(f"  {b['band']:<{w}}  {b['n']:,} / {f(b.get('mean_se'))} / {f(b.get('mean_n_items'), 1)} / "
                f"{f(b.get('rmse'))}")
    say(f"wrote {paths['csv']}, {paths['summary']}, {paths['report']}")
    return 0


# ------------------------------------------------------------------ service (api package)
SERVICE_COMMANDS = {"serve": "run the HTTP service", "keys": "manage the service's API keys"}


def _register_service(subparsers, *, load: bool = False) -> None:
    """``serve`` and ``keys``, defined by ``api.cli.add_subcommands``.

    Importing the service package imports Flask, so it is imported only when
    one of its commands is actually run (``load=True``); otherwise light
    placeholders keep the commands listed in ``cat-prom --help``.
    """
    if load:
        try:
            from api.cli import add_subcommands
        except ImportError as e:
            raise CatPromError(f"the service is not available ({e}); install cat-prom with its service "
                               f"dependencies (pip install -e .)") from None
        add_subcommands(subparsers)
        return
    for name, text in SERVICE_COMMANDS.items():
        sp = subparsers.add_parser(name, help=text, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)


#: Functions that add the engine's subcommands, in the order ``--help`` lists them
#: (the service's ``serve`` and ``keys`` follow them).
REGISTRARS: list[Callable] = [_register_bank, _register_score, _register_score_table, _register_calibrate,
                              _register_link, _register_simulate]


def build_parser(*, load_service: bool = False) -> argparse.ArgumentParser:
    """The ``cat-prom`` parser; ``load_service`` imports the service's subcommands for real."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Computerised adaptive testing for patient-reported outcomes: item banks, scoring, "
                    "simulation and the CAT service.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in REGISTRARS:
        register(sub)
    _register_service(sub, load=load_service)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first non-option word)."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cat-prom``; returns the exit status (0 ok, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(load_service=_command_of(argv) in SERVICE_COMMANDS)
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except CatPromError as e:
        print(f"{PROG}: error: {e.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:  # a file named on the command line that cannot be read or written
        if isinstance(e, BrokenPipeError):
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:
                pass
            return 0
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: cannot access{where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

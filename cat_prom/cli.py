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
    sub = p.add_subparsers(dest="bank_command", metavar="{import,export,validate,show}")
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
REGISTRARS: list[Callable] = [_register_bank, _register_score, _register_score_table]


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

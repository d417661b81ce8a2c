"""``cat-prom bank import|export|validate|show|report``: work with item-bank files."""
from __future__ import annotations

import json
import os
import sys

from .common import info, load_bank, save_bank, split_list, values_list, warn

HELP = "work with item-bank files: import, export, validate, show, report"


def register(subparsers) -> None:
    p = subparsers.add_parser("bank", help=HELP, description="Work with item-bank files (format cat-prom-bank/1).")
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
    imp.set_defaults(func=run_import)

    exp = sub.add_parser("export", help="write a bank's parameters as CSV (csv, mirt or catR layout)")
    exp.add_argument("bank", metavar="BANK.json")
    exp.add_argument("--format", choices=("csv", "mirt", "catr"), default="csv", help="layout (default csv)")
    exp.add_argument("--out", required=True, metavar="FILE", help="file to write ('-' for standard output)")
    exp.set_defaults(func=run_export)

    val = sub.add_parser("validate", help="check a bank file; print OK with its item count and content hash")
    val.add_argument("bank", metavar="BANK.json")
    val.add_argument("--fix-hash", action="store_true",
                     help="rewrite the file's content_hash to match its content (after a deliberate edit)")
    val.set_defaults(func=run_validate)

    show = sub.add_parser("show", help="human-readable summary of a bank")
    show.add_argument("bank", metavar="BANK.json")
    show.add_argument("--items", action="store_true", help="also list every item with its parameters")
    show.set_defaults(func=run_show)

    rep = sub.add_parser("report", help="HTML report: category curves, item and test information, parameters, fit",
                         description="Write DIR/report.html (plots embedded): category response curves, item and "
                                     "test information, marginal reliability, the parameter table (with SEs when "
                                     "the bank records them) and, with --responses, S-X² item fit on the complete "
                                     "cases of RESP.csv (the layout `score` reads). `calibrate --report` writes a "
                                     "fuller report (EM history) straight after a calibration: give this one "
                                     "another DIR to keep both.")
    rep.add_argument("bank", metavar="BANK.json")
    rep.add_argument("--out", required=True, metavar="DIR", help="folder to write report.html into")
    rep.add_argument("--responses", metavar="RESP.csv", help="response data for S-X² item fit")
    rep.set_defaults(func=run_report)


def run_import(args) -> int:
    from ..io.params import read_params_csv
    bank = read_params_csv(args.params, args.format, model=args.model, bank_id=args.bank_id, name=args.name,
                           direction=args.direction, labels=split_list(args.labels), values=values_list(args.values),
                           start_item=args.start_item)
    save_bank(bank, args.out)
    info(f"wrote {args.out}: bank {bank.id!r}, {bank.n_items} items, model {bank.model}, {bank.content_hash}")
    return 0


def run_export(args) -> int:
    from ..io.params import write_params
    from .common import ensure_parent
    bank = load_bank(args.bank)
    if args.out != "-":
        ensure_parent(args.out)
    target = sys.stdout if args.out == "-" else args.out
    for w in write_params(bank, target, args.format):
        warn(w)
    if target is not sys.stdout:
        info(f"wrote {args.out}: {bank.n_items} items in the {args.format} layout")
    return 0


def run_validate(args) -> int:
    from ..bank import ItemBank
    if not args.fix_hash:
        bank = ItemBank.load(args.bank)
        with open(args.bank, encoding="utf-8") as fh:
            had_hash = "content_hash" in json.load(fh)
        print(f"OK {args.bank}: bank {bank.id!r} version {bank.version}, {bank.n_items} items, {bank.content_hash}")
        if not had_hash:
            info("note: the file has no content_hash; `cat-prom bank validate --fix-hash` adds it")
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


def _summary_lines(bank) -> list[str]:
    from collections import Counter

    from ..bank import DEMO_DISCLAIMER
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
    return lines


def _item_lines(bank) -> list[str]:
    w = max(len(i) for i in bank.ids)
    lines = [f"{'id':<{w}}  model  {'a':>6}  thresholds / options / stem"]
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
        lines.append(f"{it.id:<{w}}  {it.model:<5}  {it.a:6.3f}  b = {thr}{extra}")
        lines.append(f"{'':<{w}}                 options: {opts}")
        lines.append(f"{'':<{w}}                 stem: {it.stem}")
    return lines


def run_show(args) -> int:
    bank = load_bank(args.bank)
    print("\n".join(_summary_lines(bank)))
    if args.items:
        print()
        print("\n".join(_item_lines(bank)))
    return 0


def run_report(args) -> int:
    from ..calibration.workflow import bank_item_fit
    from ..reports.calibration import write_calibration_report
    bank = load_bank(args.bank)
    fit, notes = None, []
    if args.responses:
        from ..io.responses import read_responses_csv
        _, x = read_responses_csv(args.responses, bank)
        fit, notes = bank_item_fit(bank, x, source=os.path.basename(args.responses))
    out = write_calibration_report(bank, args.out, fit=fit, notes=notes)
    misfit = out["misfit"]
    info(f"wrote {out['report']}: bank {bank.id!r}, {bank.n_items} items, marginal reliability "
         f"{out['marginal_reliability']:.3f}"
         + (f"; {len(misfit)} item(s) misfit at p < 0.01" + (f": {', '.join(misfit)}" if misfit else "")
            if fit is not None else ""))
    for n in notes:
        info("note: " + n)
    return 0

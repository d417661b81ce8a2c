"""``cat-prom calibrate``: a bank from response data, over :func:`cat_prom.calibration.calibrate_bank`."""
from __future__ import annotations

import math
import os

from ..errors import InvalidDataError
from .common import Progress, info, load_bank, save_bank, split_list, values_list

HELP = "calibrate an item bank from response data (MML-EM, GRM or GPCM)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help=HELP,
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
    c.add_argument("--no-fit", action="store_true", help="skip S-X² item fit (faster on very large data)")
    p.add_argument("--report", metavar="DIR", help="also write the HTML calibration report into DIR")
    p.add_argument("--allow-nonconverged", action="store_true",
                   help="exit 0 even when some items did not converge (the bank is written either way)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary (errors still shown)")
    p.set_defaults(func=run)


def _check_options(args):
    """The response values given with --values, after the numeric options are checked."""
    if args.quad_points < 5 or args.quad_points > 1001:
        raise InvalidDataError(f"--quad-points must be between 5 and 1001, got {args.quad_points}")
    if args.max_iter < 1:
        raise InvalidDataError(f"--max-iter must be >= 1, got {args.max_iter}")
    if not (math.isfinite(args.tol) and args.tol > 0):
        raise InvalidDataError(f"--tol must be > 0, got {args.tol}")
    if not (math.isfinite(args.min_count) and args.min_count >= 0):
        raise InvalidDataError(f"--min-count must be >= 0, got {args.min_count}")
    values = values_list(args.values)
    if values is not None:
        if len(values) < 2:
            raise InvalidDataError("--values needs at least two response values")
        if len({str(v) for v in values}) != len(values):
            raise InvalidDataError(f"--values lists a value twice: {args.values!r}")
    return values


def run(args) -> int:
    from ..calibration.workflow import calibrate_bank
    from ..io.params import read_stems_csv
    from ..io.responses import read_responses

    values = _check_options(args)
    anchor = load_bank(args.anchor) if args.anchor else None
    table = read_responses(args.responses, values=values, anchor=anchor)
    stems = read_stems_csv(args.stems, table.item_ids) if args.stems else {}
    bank_id = args.bank_id or os.path.splitext(os.path.basename(args.out))[0] or "bank"
    bar = Progress("EM", quiet=args.quiet)
    try:
        bank, det = calibrate_bank(
            table, bank_id=bank_id, model=args.model, anchor=anchor, stems=stems, labels=split_list(args.labels),
            name=args.name, domain=args.domain, version=args.bank_version, direction=args.direction,
            start_item=args.start_item, n_quad=args.quad_points, max_iter=args.max_iter, tol=args.tol,
            min_count=args.min_count, collapse_sparse=args.collapse_sparse, slope_prior=args.slope_prior,
            se=not args.no_se, item_fit=not args.no_fit, progress=lambda c, ll, ch: bar.em(c, ll, ch, max_iter=args.max_iter, tol=args.tol))
    finally:
        bar.close()
    save_bank(bank, args.out)
    if not args.quiet:
        print("\n".join(summary_lines(bank, det, anchor, min_count=args.min_count, values_given=values is not None)))
        print(f"wrote {args.out}: bank {bank.id!r}, {bank.n_items} items, {bank.content_hash}")
    if args.report:
        from ..reports.calibration import write_calibration_report
        notes = [f"Item fit not computed: {det.fit_note}."] if det.fit_note and det.fit is None else []
        summary = [("Response file", det.source), ("Response coding", det.coding["rule"])]
        out = write_calibration_report(bank, args.report, result=det.result, fit=det.fit, summary=summary,
                                       notes=notes)
        if not args.quiet:
            print(f"wrote {out['report']}")
    return _exit_status(det, args.allow_nonconverged)


def summary_lines(bank, det, anchor, *, min_count: float, values_given: bool) -> list[str]:
    """The summary printed after a calibration (one finding per line)."""
    res, coding = det.result, det.coding
    lines = [f"Calibrated {len(res.ids)} items ({bank.provenance['model'].split(' ')[0]}) on {res.n_persons} persons from "
             f"{det.source}: {det.n_responses:,} responses, {det.missing_share:.1%} missing",
             f"  response coding       {coding['rule']}" + (f" (values {coding['values'][0]}..{coding['values'][-1]})"
                                                            if not values_given and 'values' in coding else ""),
             f"  EM                    {'converged' if res.converged else 'NOT converged'} after {res.n_iter} cycles "
             f"({res.elapsed_s:.1f} s); log-likelihood {res.loglik:,.3f}"]
    if anchor is not None:
        lines.append(f"  anchors               {len(det.anchors)} items held at their parameters in bank "
                     f"{anchor.id!r}; latent N({res.latent_mean:.3f}, {res.latent_sd:.3f}²) on its metric")
    lines.append(f"  marginal reliability  {det.reliability:.3f}")
    if res.sparse_categories:
        sp = ", ".join(f"{s.item_id} cat {s.category} (n={s.count:g})" for s in res.sparse_categories[:8])
        more = f" and {len(res.sparse_categories) - 8} more" if len(res.sparse_categories) > 8 else ""
        lines.append(f"  sparse categories     {len(res.sparse_categories)} with < {min_count:g} responses: {sp}{more}")
    else:
        lines.append(f"  sparse categories     none (every category has >= {min_count:g} responses)")
    for cc in res.collapsed:
        vals = coding.get("values") or list(range(len(cc.mapping)))
        merged = []
        for g in sorted(set(cc.mapping)):
            vs = [vals[k] for k, gg in enumerate(cc.mapping) if gg == g]
            if len(vs) > 1:
                merged.append(f"{'+'.join(map(str, vs))} -> {vs[0]}")
        lines.append(f"  collapsed             {cc.item_id}: values {', '.join(merged)} (the bank lists the merged "
                     f"category under its lowest value; recode answers the same way before scoring)")
    fit = det.fit
    if fit is None:
        lines.append(f"  item fit (S-X²)       not computed: {det.fit_note}")
    elif det.misfit:
        lines.append(f"  item fit (S-X²)       {len(det.misfit)} of {len(fit.ids)} items misfit at p < 0.01 "
                     f"({fit.n_persons} complete cases): "
                     + ", ".join(f"{i} (S-X² {s:.1f}, df {d}, p {p:.2g})" for i, s, d, p in det.misfit))
    else:
        lines.append(f"  item fit (S-X²)       no item misfits at p < 0.01 ({fit.n_persons} complete cases)")
    if fit is not None and det.fit_note:
        lines.append(f"  note                  {det.fit_note}")
    if det.nonconverged:
        lines.append(f"  not converged         {len(det.nonconverged)} item(s): {', '.join(det.nonconverged)}")
    lines += [f"  warning               {i.message}" for i in res.issues if i.kind != "not_converged"]
    return lines


def _exit_status(det, allow_nonconverged: bool) -> int:
    """1 when items (or the latent distribution) did not converge, unless allowed; the reason on stderr."""
    res = det.result
    if det.nonconverged:
        nonconv = det.nonconverged
        info(f"cat-prom: {'warning: ' if allow_nonconverged else ''}{len(nonconv)} item(s) did not converge "
             f"after {res.n_iter} EM cycles: {', '.join(nonconv)}. The bank was written, but check these items "
             f"(raise --max-iter, --collapse-sparse, --slope-prior 0 0.5)"
             + ("" if allow_nonconverged else " or pass --allow-nonconverged"))
        return 0 if allow_nonconverged else 1
    if not res.converged:
        info(f"cat-prom: the EM did not converge in {res.n_iter} cycles (the latent distribution was still moving); "
             f"raise --max-iter or pass --allow-nonconverged")
        return 0 if allow_nonconverged else 1
    return 0

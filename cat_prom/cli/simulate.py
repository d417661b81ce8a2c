"""``cat-prom simulate``: Monte Carlo or post-hoc CAT simulation, with Sympson-Hetter exposure derivation."""
from __future__ import annotations

import math
import os

from ..errors import InvalidDataError
from .common import Progress, load_bank, read_design, save_bank, warn

HELP = "simulate CATs on a bank (Monte Carlo or post-hoc) and report length, precision, exposure"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help=HELP,
        description="Run the design's CAT for many simulees at once. Monte Carlo: --n simulees with true θ drawn "
                    "from N(--theta-mean, --theta-sd) (default: the design's prior); post-hoc: --responses FULL.csv "
                    "(the layout `score` reads: id,<item ids>, the bank's response values), each simulee answering "
                    "as recorded. DIR gets simulees.csv (id,theta,se,n_items,items,stop_reason[,true_theta]"
                    "[,full_bank_theta]), summary.json, report.html and PNG plots. With --rules: alert rates over a simulated "
                    "cohort (below). With --battery: a battery over a longitudinal cohort (below).")
    p.add_argument("--bank", metavar="BANK.json", help="the bank to simulate (or --battery)")
    p.add_argument("--battery", metavar="BATTERY.json",
                   help="simulate a battery over a longitudinal cohort instead (--n simulees, --sittings each), "
                        "comparing --designs; DIR gets longitudinal.md and summary.json")
    g = p.add_argument_group("battery / longitudinal options")
    g.add_argument("--banks-dir", metavar="DIR", help="folder of the battery's bank files (default: the folder "
                                                      "above the battery file's)")
    g.add_argument("--interval-days", type=float, default=14.0, metavar="D", help="days between sittings (14)")
    g.add_argument("--designs", default="today,previous,joint,both",
                   help="designs to compare: today, previous (+previous-sitting prior), joint (+joint scoring), both")
    g.add_argument("--min-items", metavar="N|BANK=N,...",
                   help="min_items of every domain (N) or of some (BANK=N,...) in the designs other than today "
                        "(default: the battery's)")
    g.add_argument("--prior", metavar="JSON", help="previous-sitting prior parameters, e.g. "
                                                  "'{\"mixture_weight\": 0.8, \"drift_sd_per_week\": 0.1}'")
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
    g = p.add_argument_group(
        "alert rates over a simulated cohort",
        "With --rules RULES.json, --n patients each answer the design's CAT at --sittings sittings, their true θ "
        "following stable, slowly worsening, flaring or improving trajectories (--mix), and the alert rules are "
        "evaluated after every sitting as the service evaluates them. DIR gets alerts-summary.json (per rule: "
        "firings and alerts per 100 finished sittings, true/false share, sensitivity) and alerts.csv (one row "
        "per firing). See docs/simulation.md.")
    g.add_argument("--rules", metavar="RULES.json", help="alert rules (certainty, MID, acceptable levels, rules)")
    g.add_argument("--sittings", type=int, default=6, metavar="K", help="sittings per patient (default 6)")
    g.add_argument("--mix", metavar="KIND=SHARE,...",
                   help="trajectory mix (default stable=0.4,worsening=0.2,flare=0.2,improving=0.2)")
    g.add_argument("--abandon-rate", type=float, default=0.0, metavar="P",
                   help="probability that a patient abandons a sitting (default 0)")
    g.add_argument("--no-acknowledge", action="store_true",
                   help="alerts stay open (default: each alert is acknowledged before the patient's next sitting)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.set_defaults(func=run)




def _check(args) -> None:
    post_hoc = args.responses is not None
    if args.rules is not None:
        if post_hoc or args.derive_exposure is not None:
            raise InvalidDataError("--rules simulates a cohort of --n patients (Monte Carlo); it does not combine "
                                   "with --responses or --derive-exposure")
        if not 1 <= args.sittings <= 1000:
            raise InvalidDataError(f"--sittings must be between 1 and 1000, got {args.sittings}")
        if not (math.isfinite(args.abandon_rate) and 0 <= args.abandon_rate < 1):
            raise InvalidDataError(f"--abandon-rate must be in [0, 1), got {args.abandon_rate}")
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


def _derive_exposure(args, bank, design, theta, seed_seq, say):
    """Sympson-Hetter parameters for --derive-exposure: the bank with them (saved in DIR) and its design."""
    import numpy as np

    from ..bank import ItemBank
    from ..provenance import rounded, software, utc_now
    from ..simulation import sympson_hetter
    if design.start in ("auto", "bank") and bank.start_item is not None:
        warn(f"the design starts every CAT with the bank's start item {bank.start_item!r}, whose exposure cannot be "
             f"controlled; use \"start\": \"max_info\" in the design to control it")
    n_sh = args.n if args.n is not None else 5000
    sh_seed = int(seed_seq.generate_state(1)[0]) if args.seed is not None else None
    bank, sh = sympson_hetter(bank, design, n=n_sh, r_max=args.derive_exposure, iterations=args.sh_iterations,
                              seed=sh_seed, theta=theta, full_output=True)
    doc = bank.to_dict()
    doc.pop("content_hash", None)
    prov = dict(doc.get("provenance") or {})
    prov["exposure_control"] = {
        "method": "Sympson-Hetter (1985), iterated simulation (cat-prom simulate --derive-exposure)",
        "r_max": args.derive_exposure, "simulees_per_round": n_sh, "rounds": len(sh["history"]),
        "max_exposure": rounded(sh["max_exposure"]), "seed": args.seed, "design": design.to_dict(),
        "date": utc_now(), "software": software()}
    doc["provenance"] = prov
    bank = ItemBank.from_dict(doc)
    sh_path = os.path.join(args.out, "bank-with-exposure.json")
    save_bank(bank, sh_path)
    h = sh["history"]
    say(f"Sympson-Hetter: {len(h)} rounds; max exposure {h[0]['max_exposure']:.3f} (round 1) -> "
        f"{sh['max_exposure']:.3f} (target {args.derive_exposure:g}); "
        f"{int((np.asarray(sh['exposure_k']) < 1).sum())} items with k < 1")
    mean_len = h[-1]["mean_length"]
    if sh["max_exposure"] > args.derive_exposure + 0.01:
        floor = mean_len / bank.n_items
        warn(f"the target exposure rate {args.derive_exposure:g} was not reached (best {sh['max_exposure']:.3f})" + (
            f"; with {mean_len:.1f} items per CAT on a {bank.n_items}-item bank the average exposure is "
            f"already {floor:.2f}, so no R_MAX below that is attainable" if floor > args.derive_exposure
            else "; raise --sh-iterations or R_MAX"))
    say(f"wrote {sh_path}")
    return bank, design.merged({"exposure": {"method": "sympson_hetter"}})


def _summary_lines(res, s, bank, design) -> list[str]:
    """The table printed after a simulation (one figure per line, then one line per θ band)."""
    tl, ex = s["test_length"], s["exposure"]

    def f(v, d=3):
        return "–" if v is None else f"{v:.{d}f}"

    rows = [("bias", f(s["bias"])), ("RMSE", f(s["rmse"])), ("correlation", f(s["correlation"])),
            ("test length mean (SD)", f"{f(tl['mean'], 2)} ({f(tl['sd'], 2)})"),
            ("test length median / p90", f"{f(tl['median'], 0)} / {f(tl['p90'], 0)}"),
            ("mean SE", f(s["se"]["mean"]))]
    if "share_at_or_below_target" in s["se"]:
        rows.append((f"SE <= {design.se_target:g}", f"{s['se']['share_at_or_below_target']:.1%}"))
    rows += [("max exposure rate", f(ex["max"])), ("items never used", f"{ex['share_never_used']:.1%}"),
             ("overlap rate", f(ex["overlap_rate"])),
             ("stop reasons", ", ".join(f"{k} {v:,}" for k, v in s["stop_reasons"].items() if v))]
    if s.get("n_not_scored"):
        rows.append(("not scored (no answer)", f"{s['n_not_scored']:,}"))
    if s.get("cats_per_second"):
        rows.append(("CATs per second", f"{s['cats_per_second']:,.0f}"))
    w = max(len(k) for k, _ in rows)
    lines = [f"{res.mode.replace('_', '-')} simulation: {s['n']:,} simulees, bank {bank.id!r} ({bank.n_items} items)"
             + (f", compared with {s['reference'].replace('_', ' ')}" if s["reference"] else "")]
    lines += [f"  {k:<{w}}  {v}" for k, v in rows]
    lines.append(f"  {'θ band':<{w}}  n / mean SE / mean length / RMSE")
    for b in s["by_theta_band"]:
        if b["n"]:
            lines.append(f"  {b['band']:<{w}}  {b['n']:,} / {f(b.get('mean_se'))} / {f(b.get('mean_n_items'), 1)} / "
                         f"{f(b.get('rmse'))}")
    return lines



def run(args) -> int:
    import numpy as np

    from ..simulation import simulate
    if (args.bank is None) == (args.battery is None):
        raise InvalidDataError("give --bank BANK.json (one bank) or --battery BATTERY.json (a longitudinal cohort)")
    if args.battery is not None:
        from .simulate_battery import run_battery
        return run_battery(args)
    bank = load_bank(args.bank)
    design = read_design(args.design)
    _check(args)
    say = (lambda *a, **k: None) if args.quiet else print
    if args.rules is not None:
        return _run_cohort(args, bank, design, say)
    post_hoc = args.responses is not None
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise InvalidDataError(f"cannot create {args.out!r}: {e.strerror}") from None
    theta_seq, sh_seq, sim_seq = np.random.SeedSequence(args.seed).spawn(3)
    theta = None
    if not post_hoc and (args.theta_mean is not None or args.theta_sd is not None):
        mu = args.theta_mean if args.theta_mean is not None else design.prior["mean"]
        sd = args.theta_sd if args.theta_sd is not None else design.prior["sd"]
        theta = np.random.default_rng(theta_seq).normal(mu, sd, size=args.n)
    sim_seed = int(sim_seq.generate_state(1)[0]) if args.seed is not None else None
    if args.derive_exposure is not None:
        bank, design = _derive_exposure(args, bank, design, theta, sh_seq, say)
    bar = Progress("CAT", quiet=args.quiet)
    try:
        if post_hoc:
            from ..io.responses import read_responses_csv
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
    for line in _summary_lines(res, res.summary(), bank, design):
        say(line)
    say(f"wrote {paths['csv']}, {paths['summary']}, {paths['report']}")
    return 0


def _run_cohort(args, bank, design, say) -> int:
    """``--rules``: alert rates of a rules file over a simulated cohort (:mod:`cat_prom.clinical.cohort`)."""
    import numpy as np

    from ..clinical.cohort import simulate_alerts
    from ..clinical.rules import RuleConfig
    from ..jsonable import dumps
    from ..simulation.cohort import cohort_trajectories
    config = RuleConfig.load(args.rules)
    if args.theta_mean is not None or args.theta_sd is not None:
        raise InvalidDataError("--theta-mean/--theta-sd do not apply to --rules: the cohort's trajectories "
                               "start from their own distribution (docs/simulation.md)")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise InvalidDataError(f"cannot create {args.out!r}: {e.strerror}") from None
    cohort_seq, sim_seq = np.random.SeedSequence(args.seed).spawn(2)
    cohort = cohort_trajectories(args.n, args.sittings, rng=np.random.default_rng(cohort_seq), mix=args.mix,
                                 direction=bank.direction)
    sim_seed = int(sim_seq.generate_state(1)[0]) if args.seed is not None else None
    res = simulate_alerts(bank, design, config, cohort, seed=sim_seed, abandon_rate=args.abandon_rate,
                          acknowledge=not args.no_acknowledge)
    res.seed = args.seed
    summary = res.summary()
    summary_path = os.path.join(args.out, "alerts-summary.json")
    csv_path = os.path.join(args.out, "alerts.csv")
    with open(summary_path, "w", encoding="utf-8") as fh:
        fh.write(dumps(summary, indent=2))
    res.to_csv(csv_path)
    for line in _cohort_lines(summary, bank):
        say(line)
    say(f"wrote {summary_path}, {csv_path}")
    return 0


def _cohort_lines(s: dict, bank) -> list[str]:
    """The table printed after a cohort alert simulation: one line per rule."""
    def f(v, d=1, pct=False):
        return "–" if v is None else (f"{v:.0%}" if pct else f"{v:.{d}f}")

    lines = [f"alert simulation: {s['n_patients']:,} patients x {s['n_sittings']} sittings on bank {bank.id!r}; "
             f"{s['finished_sittings']:,} finished, {s['abandoned_sittings']:,} abandoned, "
             f"{s['not_scored_sittings']:,} not scored",
             f"  {'rule':<20} {'firings/100':>11} {'alerts/100':>10} {'false':>6} {'sensitivity':>11}"]
    for rule, r in list(s["by_rule"].items()) + [("all rules", s["total"])]:
        lines.append(f"  {rule:<20} {f(r['firings_per_100_sittings']):>11} {f(r['alerts_per_100_sittings']):>10} "
                     f"{f(r.get('false_share'), pct=True):>6} {f(r.get('sensitivity'), pct=True):>11}")
    return lines

"""``cat-prom simulate --battery``: a battery over a longitudinal cohort, today's design against the new ones."""
from __future__ import annotations

import json
import os
import platform
import time

from ..errors import InvalidDataError
from .common import Progress

__all__ = ["run_battery"]


def _prior(text):
    if text is None:
        return None
    try:
        p = json.loads(text)
    except ValueError as e:
        raise InvalidDataError(f"--prior must be a JSON object: {e}") from None
    if not isinstance(p, dict):
        raise InvalidDataError("--prior must be a JSON object of previous-sitting prior parameters")
    return p


def _min_items(text, banks):
    """``--min-items``: "N" for every domain, or "bank=N,bank=N" for some."""
    if text is None:
        return None
    try:
        if "=" not in text:
            return int(text)
        out = {}
        for part in filter(None, (x.strip() for x in text.split(","))):
            b, _, k = part.partition("=")
            out[b.strip()] = int(k)
    except ValueError:
        raise InvalidDataError(f"--min-items takes N or bank=N,...; got {text!r}") from None
    bad = sorted(set(out) - set(banks))
    if bad:
        raise InvalidDataError(f"--min-items names bank {bad[0]!r}, which is not in the battery")
    return out


def run_battery(args) -> int:
    import numpy as np

    import cat_prom
    from ..bank import ItemBank
    from ..battery_file import load_battery
    from ..simulation.longitudinal import (DESIGNS, battery_cohort, design_options, drift_estimates, markdown,
                                           run_cohort, summarise)
    if args.n is None or not 4 <= args.n <= 1_000_000:
        raise InvalidDataError("--n (simulees in the cohort, 4 to 1000000) is required with --battery")
    if not 2 <= args.sittings <= 100:
        raise InvalidDataError(f"--sittings must be 2-100 with --battery; got {args.sittings}")
    names = [x.strip() for x in args.designs.split(",") if x.strip()]
    bad = [x for x in names if x not in DESIGNS]
    if bad or not names:
        raise InvalidDataError(f"--designs takes a comma-separated list of {', '.join(DESIGNS)}; got {args.designs!r}")
    battery = load_battery(args.battery)
    folder = args.banks_dir or os.path.dirname(os.path.dirname(os.path.abspath(args.battery)))
    banks = {b: ItemBank.load(os.path.join(folder, f"{b}.json")) for b in battery.banks}
    battery = load_battery(args.battery, banks=banks)
    if battery.correlation is None and any(x in ("joint", "both") for x in names):
        raise InvalidDataError(f"battery {battery.id!r} has no correlation matrix; joint designs need one")
    bank_list = [banks[b] for b in battery.banks]
    R = battery.correlation_matrix() if battery.correlation is not None else np.eye(len(bank_list))
    seed = 0 if args.seed is None else args.seed
    cohort_seq, run_seq = np.random.SeedSequence(seed).spawn(2)
    cohort = battery_cohort(bank_list, R, n=args.n, sittings=args.sittings, interval_days=args.interval_days,
                            rng=np.random.default_rng(cohort_seq))
    run_seed = int(run_seq.generate_state(1)[0])
    prior = _prior(args.prior)
    min_items = _min_items(args.min_items, battery.banks)
    say = (lambda *a, **k: None) if args.quiet else print
    results, timing = {}, {}
    meta = dict(cohort["params"])
    for name in names:
        opts = design_options(name, battery, prior=prior, min_items=min_items)
        bar = Progress(name, quiet=args.quiet)
        t0 = time.perf_counter()
        try:
            run = run_cohort(battery, banks, cohort["theta"], cohort["days"], opts, seed=run_seed, progress=bar.count)
        finally:
            bar.close()
        timing[name] = time.perf_counter() - t0
        results[name] = summarise(run, cohort["theta"], cohort["groups"], bank_list, flare_at=cohort["flare_at"],
                                  flare_domain=battery.banks.index(meta["flare_bank"]))
        results[name]["options"] = opts
        if name == "today":
            meta["drift"] = drift_estimates(run, cohort["days"], cohort["groups"], bank_list)
    table = markdown(results, bank_list, meta)
    os.makedirs(args.out, exist_ok=True)
    cmd = (f"cat-prom simulate --battery {args.battery} --n {args.n} --sittings {args.sittings} --interval-days "
           f"{args.interval_days:g} --designs {','.join(names)} --seed {seed}"
           + (f" --min-items {args.min_items}" if args.min_items is not None else "")
           + (f" --prior '{args.prior}'" if args.prior else "") + f" --out {args.out}")
    head = (f"Battery `{battery.id}`, {args.n} simulees ({args.n // 4} per group: stable, slowly worsening, flare, "
            f"improving), {args.sittings} sittings every {args.interval_days:g} days, seed {seed}; cat-prom "
            f"{cat_prom.__version__}, numpy {np.__version__}, Python {platform.python_version()}; run time "
            + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items()) + ".\n\nCommand: `" + cmd + "`\n\n")
    with open(os.path.join(args.out, "longitudinal.md"), "w", encoding="utf-8") as fh:
        fh.write(head + table)
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump({"command": cmd, "cohort": meta, "results": results, "seconds": timing}, fh, indent=1)
    say(head + table)
    say(f"wrote {os.path.join(args.out, 'longitudinal.md')}, summary.json")
    return 0

#!/usr/bin/env python
"""Alert rates and cost of the example rules file over simulated cohorts (``cat_prom.clinical.cohort``).

Workload (seeded): ``docs/examples/alert-rules.json`` on the pain-interference and
physical-function demo banks, PROMIS default design, cohorts of ``--patients`` patients x
``--sittings`` sittings with the default trajectory mix and a 5% abandonment rate; each
alert acknowledged before the next sitting. Prints (and with ``--out`` writes) one table of
alert rates per rule and one of wall times: the whole simulation, and one ``prob_beyond`` call
on an 81-node posterior (best of ``--repeat``). Timings are reported, never asserted; they
move with the machine's load, which the output states.

Usage::

    python benchmarks/alert_simulation.py --out benchmarks/results/alert_simulation.md
    python benchmarks/alert_simulation.py --patients 100 --sittings 4   # quicker
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
import timeit

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from cat_prom import ItemBank, __version__  # noqa: E402
from cat_prom.clinical import RuleConfig, prob_beyond  # noqa: E402
from cat_prom.clinical.cohort import simulate_alerts  # noqa: E402
from cat_prom.simulation.cohort import cohort_trajectories  # noqa: E402

BANKS = ("pain-interference", "physical-function")
RULES = os.path.join(ROOT, "docs", "examples", "alert-rules.json")


def _f(v, pct=False):
    return "–" if v is None else (f"{v:.0%}" if pct else f"{v:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--sittings", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="also write the tables to this Markdown file")
    args = ap.parse_args(argv)
    config = RuleConfig.load(RULES)
    load0 = os.getloadavg()[0]
    rows, times = [], []
    for bank_id in BANKS:
        bank = ItemBank.load(os.path.join(ROOT, "item_banks", f"{bank_id}.json"))
        cohort = cohort_trajectories(args.patients, args.sittings, rng=np.random.default_rng(args.seed),
                                     direction=bank.direction)
        t0 = time.perf_counter()
        res = simulate_alerts(bank, None, config, cohort, seed=args.seed + 1, abandon_rate=0.05)
        elapsed = time.perf_counter() - t0
        s = res.summary()
        times.append((bank_id, s["finished_sittings"], elapsed))
        for rule, r in list(s["by_rule"].items()) + [("all rules", s["total"])]:
            rows.append(f"| {bank_id} | {rule} | {_f(r['firings_per_100_sittings'])} | "
                        f"{_f(r['alerts_per_100_sittings'])} | {_f(r.get('false_share'), True)} | "
                        f"{_f(r.get('sensitivity'), True)} |")
    nodes = np.linspace(-6, 6, 81)
    lp = -0.5 * ((nodes - 0.3) / 0.3) ** 2
    prob_beyond(lp, nodes, 0.5, log=True)  # builds the cached spline matrix
    per_call = min(timeit.repeat(lambda: prob_beyond(lp, nodes, 0.5, log=True), number=1000,
                                 repeat=args.repeat)) / 1000
    load1 = os.getloadavg()[0]
    lines = [
        "# Alert rates of the example rules over simulated cohorts",
        "",
        f"`python benchmarks/alert_simulation.py --patients {args.patients} --sittings {args.sittings} "
        f"--seed {args.seed}` on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC: cat-prom {__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, 1-minute load "
        f"average {load0:.1f} before and {load1:.1f} after. Rules: `docs/examples/alert-rules.json`; PROMIS "
        f"default design; default trajectory mix (40% stable, 20% worsening, 20% flare, 20% improving); 5% of "
        f"sittings abandoned; every alert acknowledged before the next sitting. Demo banks: not clinically "
        f"validated.",
        "",
        "| bank | rule | firings / 100 sittings | alerts / 100 sittings | false share | sensitivity |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
        "",
        "| what | finished sittings | wall time |",
        "|---|---:|---:|",
        *[f"| `simulate_alerts`, {b} | {n:,} | {t:.2f} s |" for b, n, t in times],
        f"| one `prob_beyond` call (81 nodes, best of {args.repeat} x 1000) | – | {per_call * 1e6:.0f} µs |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

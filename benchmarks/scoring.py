#!/usr/bin/env python
"""Response-pattern scoring throughput: EAP, MAP, ML and WLE, beside a baseline checkout.

Workload (seeded): the pain-interference demo bank (36 five-category GRM items), 50,000
response patterns drawn from the model at θ ~ N(0, 1), then 30% of the answers deleted at
random. Each method scores all patterns in one ``cat_prom.scoring.score`` call (default
grid and prior: 81 points on [-6, 6], N(0, 1)). Also timed: building a bank's grid tables
(``ItemBank.grid``: log P and information on the 81-point grid and the 0.01-step table) for a
seeded 300-item bank, which the first session or simulation on a bank pays.

With ``--baseline DIR`` (a checkout with its own ``.venv``, e.g. the code before a change)
the same workload is timed there in a subprocess in the same run, and its estimates are
compared with this checkout's (largest |Δθ|, largest relative ΔSE, flags).

Timings are the best of ``--repeat`` runs, the methods interleaved (the machine's load moves
between runs); rows/s = patterns / best time. Timings are reported, never asserted.

Usage::

    python benchmarks/scoring.py                        # this checkout only
    python benchmarks/scoring.py --baseline /work/baseline --out benchmarks/results/scoring.md
    python benchmarks/scoring.py --quick                # 5,000 patterns, 1 run
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
METHODS = ("eap", "map", "ml", "wle")
BANK = os.path.join("item_banks", "pain-interference.json")

# Runs in this checkout or, as a subprocess, in the baseline's (stdlib + numpy + cat_prom only).
TIMER = r'''
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from cat_prom.bank import ItemBank
from cat_prom import scoring

def run(root, data, out, repeat, methods):
    X = np.load(data)
    bank = ItemBank.load(root + "/item_banks/pain-interference.json")
    best = {m: float("inf") for m in methods}
    res = {}
    for _ in range(repeat):
        for m in methods:
            t0 = time.perf_counter()
            r = scoring.score(X, bank, m)
            best[m] = min(best[m], time.perf_counter() - t0)
            res[m] = r
    rng = np.random.default_rng(11)
    a = rng.uniform(1.2, 3.2, 300)
    loc = rng.normal(0.3, 0.9, 300)
    steps = np.sort(rng.normal(0, 1.0, (300, 4)), axis=1)
    b = loc[:, None] + 1.2 * (steps - steps.mean(axis=1, keepdims=True))
    grid_s = float("inf")
    for _ in range(max(3, repeat)):
        big = ItemBank.from_params(a, b, id="bench-300")
        t0 = time.perf_counter()
        big.grid(np.linspace(-6.0, 6.0, 81))
        grid_s = min(grid_s, time.perf_counter() - t0)
    np.savez(out, **{m + "_theta": res[m].theta for m in methods}, **{m + "_se": res[m].se for m in methods},
             **{m + "_flags": np.array(res[m].flags, dtype=object).astype(str) for m in methods})
    print(json.dumps({"best_s": best, "grid_s": grid_s}))

run(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(","))
'''


def make_patterns(n: int, seed: int = 2026) -> np.ndarray:
    """n response patterns (0-based categories, NaN = missing) on the pain-interference bank."""
    sys.path.insert(0, ROOT)
    from cat_prom import irt
    from cat_prom.bank import ItemBank

    bank = ItemBank.load(os.path.join(ROOT, BANK))
    rng = np.random.default_rng(seed)
    P = irt.probabilities(rng.normal(0.0, 1.0, n), bank.params)  # (n, 36, 5)
    X = (rng.random((n, bank.n_items, 1)) > np.cumsum(P, axis=2)).sum(axis=2).astype(float)
    X[rng.random(X.shape) < 0.3] = np.nan
    return X


def time_in(python: str, root: str, data: str, repeat: int, methods) -> tuple[dict, dict]:
    """Run TIMER with ``python`` on checkout ``root``; returns (timings, estimates)."""
    with tempfile.TemporaryDirectory() as tmp:
        script, out = os.path.join(tmp, "timer.py"), os.path.join(tmp, "out.npz")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(TIMER)
        env = dict(os.environ, PYTHONPATH=root)
        proc = subprocess.run([python, script, root, data, out, str(repeat), ",".join(methods)], cwd=root,
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"timing in {root} failed:\n{proc.stderr}")
        timings = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out) as z:
            est = {k: z[k] for k in z.files}
    return timings, est


def compare(new: dict, old: dict, m: str) -> str:
    """Largest |Δθ| and relative ΔSE between two runs' estimates (finite SEs), and flag agreement."""
    dt = np.max(np.abs(new[m + "_theta"] - old[m + "_theta"]))
    se_n, se_o = new[m + "_se"], old[m + "_se"]
    fin = np.isfinite(se_n) & np.isfinite(se_o)
    ds = np.max(np.abs(se_n[fin] - se_o[fin]) / se_o[fin]) if fin.any() else 0.0
    same = bool(np.all(new[m + "_flags"] == old[m + "_flags"]) and np.all(np.isfinite(se_n) == np.isfinite(se_o)))
    return f"{dt:.1e} | {ds:.1e} | {'same' if same else 'DIFFER'}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000, help="response patterns (default 50,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method for this checkout (best is kept)")
    ap.add_argument("--baseline", metavar="DIR", help="a checkout with its own .venv to time beside this one")
    ap.add_argument("--baseline-repeat", type=int, default=1, help="runs per method for the baseline")
    ap.add_argument("--quick", action="store_true", help="5,000 patterns, one run")
    ap.add_argument("--out", metavar="FILE.md", help="also write the report to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 5_000, 1
    started = _dt.datetime.now(_dt.timezone.utc)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "patterns.npy")
        np.save(data, make_patterns(args.n))
        runs = {"this checkout": time_in(sys.executable, ROOT, data, args.repeat, METHODS)}
        if args.baseline:
            base = os.path.abspath(args.baseline)
            runs["baseline"] = time_in(os.path.join(base, ".venv", "bin", "python"), base, data,
                                       args.baseline_repeat, METHODS)
    load_after = os.getloadavg()
    eap_s = runs["this checkout"][0]["best_s"]["eap"]
    lines = ["# Response-pattern scoring throughput", ""]
    lines.append(f"Command: `python benchmarks/scoring.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`, "
                 f"run {started:%Y-%m-%d %H:%M} UTC. Load average (1/5/15 min) before "
                 f"{'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}.")
    lines.append("")
    lines.append(f"{args.n:,} patterns on the pain-interference demo bank (36 five-category GRM items), drawn at "
                 "θ ~ N(0, 1) with 30% of answers missing at random; one `scoring.score` call per method, default "
                 "grid and prior. Best of "
                 + (f"{args.repeat} (this checkout) / {args.baseline_repeat} (baseline)" if args.baseline
                    else f"{args.repeat}") + " interleaved runs. "
                 "Ratio = time / this checkout's EAP time in the same run.")
    lines.append("")
    lines.append("| code | method | seconds | rows/s | ratio to EAP |")
    lines.append("|---|---|---:|---:|---:|")
    for name, (t, _) in runs.items():
        for m in METHODS:
            s = t["best_s"][m]
            lines.append(f"| {name} | {m.upper()} | {s:.3f} | {args.n / s:,.0f} | {s / eap_s:.1f} |")
    lines.append("")
    lines.append("Grid tables of a seeded 300-item GRM bank (`ItemBank.grid` on 81 nodes plus the 1201-node "
                 "information table), best of 3:")
    lines.append("")
    lines.append("| code | seconds |")
    lines.append("|---|---:|")
    for name, (t, _) in runs.items():
        lines.append(f"| {name} | {t['grid_s']:.3f} |")
    if "baseline" in runs:
        lines.append("")
        lines.append("Agreement with the baseline on all patterns (largest |Δθ|, largest relative ΔSE, flags):")
        lines.append("")
        lines.append("| method | max abs Δθ | max rel ΔSE | flags |")
        lines.append("|---|---:|---:|---|")
        for m in METHODS:
            lines.append(f"| {m.upper()} | {compare(runs['this checkout'][1], runs['baseline'][1], m)} |")
    lines.append("")
    lines.append(f"Machine: {os.cpu_count()} logical cores ({platform.machine()}), Python "
                 f"{platform.python_version()}, numpy {np.__version__}; shared with other jobs.")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

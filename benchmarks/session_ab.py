#!/usr/bin/env python
"""Per-answer latency of CatSession: this checkout against another one, in one process.

Timing two checkouts in separate runs on a shared machine compares their loads as much as
their code. This script imports the other checkout's engine under another name
(``cat_prom_old``, a copy of its ``cat_prom/`` package in a temporary folder) and times both
``CatSession``s in the same process, session by session in turn, on the same bank and
pre-drawn answers (the workload of ``benchmarks/engine_latency.py``): five-category GRM
items, sessions of 40 questions, ``{"min_items": 0, "max_items": 40, "se_target": null}``
plus the design change of each row. A step is ``answer()`` + ``current_item``, as there.

Usage::

    python benchmarks/session_ab.py --old ../baseline            # 300 items, every design row
    python benchmarks/session_ab.py --old ../baseline --designs mfi,mpwi --sessions 600

Reported: the median step of each engine and their ratio (new / old); nothing is asserted.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir))

from engine_latency import Workload, catprom_engine, grm_params  # noqa: E402

DESIGNS = {
    "mfi": {"selection": "mfi"},
    "mpwi": {"selection": "mpwi"},
    "kl": {"selection": "kl"},
    "mepv": {"selection": "mepv"},
    "random": {"selection": "random"},
    "randomesque": {"exposure": {"method": "randomesque", "k": 5}},
    "sympson_hetter": {"exposure": {"method": "sympson_hetter"}},
    "content": {"content_targets": {"a": 0.5, "b": 0.3, "c": 0.2}},
}


def load_old(checkout: str):
    """The other checkout's engine as the package ``cat_prom_old``."""
    tmp = tempfile.mkdtemp(prefix="cat_prom_old_")
    shutil.copytree(os.path.join(checkout, "cat_prom"), os.path.join(tmp, "cat_prom_old"))
    sys.path.insert(0, tmp)
    return importlib.import_module("cat_prom_old"), tmp


def measure(engines: dict, work: Workload, n_sessions: int) -> dict:
    """Median step (µs) of each engine, their sessions taken in turn (after a warm-up)."""
    sessions = {name: catprom_engine(bank, design, work, cls) for name, (cls, bank, design) in engines.items()}
    times = {name: [] for name in engines}
    for i in range(5):
        for name, session in sessions.items():
            for _ in session(10_000 + i):
                pass
    gc.collect()
    gc.disable()
    try:
        for i in range(n_sessions):
            for name in (list(engines) if i % 2 else list(engines)[::-1]):
                times[name].extend(sessions[name](i))
    finally:
        gc.enable()
    return {name: float(np.median(t)) / 1000 for name, t in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the other checkout (a folder holding cat_prom/)")
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=300, help="sessions of each engine per design")
    ap.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated, of {', '.join(DESIGNS)}")
    ap.add_argument("--seed", type=int, default=20260101)
    args = ap.parse_args(argv)

    import cat_prom
    old, tmp = load_old(args.old)
    try:
        a, b = grm_params(args.items, args.seed)
        content = [["abc"[i % 3]] for i in range(args.items)]
        work = Workload(a, b, args.seed)
        load = os.getloadavg()[0]
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        rows = []
        for name in args.designs.split(","):
            doc = dict({"min_items": 0, "max_items": 40, "se_target": None}, **DESIGNS[name])
            engines = {}
            for label, pkg in (("old", old), ("new", cat_prom)):
                bank = pkg.ItemBank.from_params(a, b, id=f"grm{args.items}", content=content)
                design = pkg.Design.from_dict(doc)
                bank.grid(design.grid_theta())
                engines[label] = (pkg.CatSession, bank, design)
            med = measure(engines, work, args.sessions)
            rows.append((name, med["old"], med["new"]))
        print(f"# CatSession step: {os.path.abspath(args.old)} (old) and this checkout (new) in one process\n")
        print(f"`python benchmarks/session_ab.py {' '.join(sys.argv[1:] if argv is None else argv)}`, "
              f"{started}, load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
              f"{args.items} five-category GRM items, {args.sessions} sessions of 40 questions per engine "
              "and design, taken in turn.\n")
        print("| design | old median µs | new median µs | new / old |\n|---|---:|---:|---:|")
        for name, o, n in rows:
            print(f"| {name} `{json.dumps(DESIGNS[name])}` | {o:.1f} | {n:.1f} | {n / o:.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Latency of one CAT step: cat-prom beside its pip-installable peers, in one run.

A *step* is what happens between two questions: record the answer, update the
ability estimate, check the stop rules and choose the next item. For cat-prom
it is timed through the session's public methods only::

    t0 = perf_counter_ns(); s.answer(item.id, value); item = s.current_item; t1 = perf_counter_ns()

Workload: banks of 50, 300 and 1000 five-category GRM items with seeded random,
realistic parameters (a ~ lognormal around 1.8, thresholds spread around a
location ~ N(0.3, 0.8)); simulees theta ~ N(0, 1) whose answers to every item are
drawn before the session (outside the timed region); design
``{"min_items": 0, "max_items": 40, "se_target": null}`` so that every session
runs 40 questions. The last step of a session (which stops instead of
selecting) and the choice of the first item are not counted. Every step is
timed on its own with ``time.perf_counter_ns`` (about 0.1 µs of the figure is
the clock itself), after warm-up sessions, with the garbage collector off
while timing.

Peers, on the same machine in the same run (both take dichotomous items only,
so they get a 2PL bank of the same size, and cat-prom is timed on that bank
too for a like-for-like ratio):

* catsim: ``NumericalSearchEstimator()`` (its default: scipy ``bounded`` search
  of the likelihood, Dodd's heuristic for all-equal patterns) and
  ``MaxInfoSelector()`` called standalone with the item bank, administered items
  and response vector; a step = append the answer + ``estimate`` + ``select``.
* adaptivetesting: ``TestAssembler`` in simulation mode (answers given as the
  pool's ``simulated_responses``) with ``maximum_information_criterion``
  and either ``ExpectedAPosteriori`` with ``NormalPrior(0, 1)`` (interval
  [-10, 10]; its EAP integrates on 1000 points) or ``MLEstimator``; a step =
  one ``run_test_once()`` (select, take the answer, estimate θ and SE, drop
  the item from the pool, record the result).
* a bare numpy kernel on cat-prom's precomputed arrays, for context: one row
  added to the log-posterior, EAP mean and SD, the criterion (MFI: nearest row
  of the fine information table; MPWI: posterior @ information), argmax.

Usage::

    python benchmarks/engine_latency.py            # full run, about 2-3 minutes on 2 cores
    python benchmarks/engine_latency.py --quick    # seconds; numbers are rough
    python benchmarks/engine_latency.py --no-peers # cat-prom and the numpy kernel only
    python benchmarks/engine_latency.py --out benchmarks/results/engine_latency.md

The targets (cat-prom median step <= 20 µs at 300 items, <= 30 µs at 1000
items, MFI and MPWI) are reported, never asserted.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import platform
import sys
import time
import warnings

import numpy as np

try:
    import cat_prom
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import cat_prom

from cat_prom import irt
from cat_prom.bank import ItemBank
from cat_prom.design import Design
from cat_prom.session import CatSession

perf_ns = time.perf_counter_ns

SIZES = (50, 300, 1000)
GRM_SELECTORS = ("mfi", "mpwi", "kl", "mepv")
TARGETS_US = {300: 20.0, 1000: 30.0}


# --------------------------------------------------------------------------- workload
def grm_params(n: int, seed: int):
    """Five-category GRM parameters, PROMIS-like: a around 1.8, thresholds spread over about 3 logits."""
    rng = np.random.default_rng([seed, n, 5])
    a = rng.lognormal(np.log(1.8), 0.35, n)
    loc = rng.normal(0.3, 0.8, n)
    gaps = rng.uniform(0.4, 1.2, (n, 4))
    b = loc[:, None] + np.cumsum(gaps, axis=1) - gaps.sum(axis=1)[:, None] / 2
    return a, b


def twopl_params(n: int, seed: int):
    """Dichotomous 2PL parameters (c = 0, d = 1) for the peers."""
    rng = np.random.default_rng([seed, n, 2])
    return rng.lognormal(np.log(1.5), 0.3, n), rng.normal(0.0, 1.0, n)


def draw_responses(a, b, theta: float, rng: np.random.Generator) -> np.ndarray:
    """One simulee's category for every item (GRM; b is (n, k-1)), drawn from the model."""
    p = irt.probabilities(np.array([theta]), a, b)[0]  # (n, k)
    cum = np.cumsum(p, axis=1)
    u = rng.random(a.shape[0])
    return np.minimum((u[:, None] > cum).sum(axis=1), p.shape[1] - 1)


class Workload:
    """Simulees (true theta and pre-drawn answers to every item) shared by all engines on one bank."""

    def __init__(self, a, b, seed: int, n_sim: int = 64):
        rng = np.random.default_rng([seed, a.shape[0], 99])
        self.thetas = rng.normal(0.0, 1.0, n_sim)
        self.responses = [draw_responses(a, b, t, rng) for t in self.thetas]

    def simulee(self, i: int):
        i %= len(self.thetas)
        return float(self.thetas[i]), self.responses[i]


# --------------------------------------------------------------------------- engines
# Each engine is a function (simulee index) -> generator yielding one timed step (ns) at a time.

def catprom_engine(bank: ItemBank, design: Design, work: Workload, session_class=CatSession):
    """Sessions of ``session_class`` (another checkout's CatSession in benchmarks/session_ab.py)."""
    index = bank._index  # id -> position, used only outside the timed region to look up the answer

    def session(i):
        _, resp = work.simulee(i)
        s = session_class(bank, design, seed=i)
        item = s.current_item
        while item is not None:
            value = int(resp[index[item.id]])
            t0 = perf_ns()
            s.answer(item.id, value)
            item = s.current_item
            t1 = perf_ns()
            if item is None:  # the stopping step selects nothing: not counted
                return
            yield t1 - t0
    return session


def numpy_engine(bank: ItemBank, design: Design, work: Workload, selector: str):
    theta = design.grid_theta()
    tab = bank.grid(theta)
    log_p = tab.log_p
    info = tab.info
    fine = tab.fine_info
    lo, step, last = float(tab.fine_theta[0]), tab.fine_step, fine.shape[0] - 1
    th, th2 = theta, theta * theta
    prior = design.log_prior(theta)
    max_items = design.max_items
    mpwi = selector == "mpwi"

    def session(i):
        _, resp = work.simulee(i)
        lp = prior.copy()
        pen = np.zeros(bank.n_items)
        j = int(np.argmax(fine[int(round((0.0 - lo) / step))]))
        for n_asked in range(1, max_items):
            k = int(resp[j])
            t0 = perf_ns()
            pen[j] = -np.inf
            lp += log_p[:, j, k]
            w = np.exp(lp - lp.max())
            w /= w.sum()
            m = float(w @ th)
            sd = (float(w @ th2) - m * m) ** 0.5  # noqa: F841 - part of the work an EAP step does
            if mpwi:
                s = w @ info
            else:
                r = min(max(int((m - lo) / step + 0.5), 0), last)
                s = fine[r]
            j = int(np.argmax(s + pen))
            t1 = perf_ns()
            yield t1 - t0
    return session


def catsim_engine(a, b, work: Workload):
    from catsim.estimation import NumericalSearchEstimator
    from catsim.item_bank import ItemBank as CsBank
    from catsim.selection import MaxInfoSelector

    n = a.shape[0]
    cs_bank = CsBank(np.column_stack([a, b, np.zeros(n), np.ones(n)]))
    estimator = NumericalSearchEstimator()
    selector = MaxInfoSelector()

    def session(i, max_items):
        _, resp = work.simulee(i)
        resp = [bool(x) for x in resp]
        administered: list[int] = []
        answers: list[bool] = []
        theta = 0.0
        j = selector.select(item_bank=cs_bank, administered_items=administered, est_theta=theta)
        for _ in range(1, max_items):
            x = resp[j]
            t0 = perf_ns()
            administered.append(j)
            answers.append(x)
            theta = estimator.estimate(item_bank=cs_bank, administered_items=administered, response_vector=answers,
                                       est_theta=theta)
            j = selector.select(item_bank=cs_bank, administered_items=administered, est_theta=theta)
            t1 = perf_ns()
            yield t1 - t0
    return session, cs_bank


def adaptivetesting_engine(a, b, work: Workload, estimator: str):
    from adaptivetesting.implementations import TestAssembler
    from adaptivetesting.math.estimators import ExpectedAPosteriori, MLEstimator, NormalPrior
    from adaptivetesting.math.item_selection import maximum_information_criterion
    from adaptivetesting.models import ItemPool

    n = a.shape[0]
    if estimator == "eap":
        est, est_args = ExpectedAPosteriori, {"prior": NormalPrior(0.0, 1.0), "optimization_interval": (-10, 10)}
    else:
        est, est_args = MLEstimator, {"optimization_interval": (-10, 10)}
    a_l, b_l = a.tolist(), b.tolist()

    def session(i, max_items):
        theta, resp = work.simulee(i)
        pool = ItemPool.load_from_list(b=b_l, a=a_l, c=[0.0] * n, d=[1.0] * n,
                                       simulated_responses=[int(x) for x in resp])
        test = TestAssembler(pool, f"sim{i}", f"p{i}", ability_estimator=est, estimator_args=est_args,
                             item_selector=maximum_information_criterion, true_ability_level=theta,
                             simulation=True)
        for _ in range(1, max_items):
            t0 = perf_ns()
            test.run_test_once()
            t1 = perf_ns()
            yield t1 - t0
    return session


# --------------------------------------------------------------------------- driver
class Budget:
    def __init__(self, target_steps: int, max_seconds: float, warmup_sessions: int):
        self.target_steps = target_steps
        self.max_seconds = max_seconds
        self.warmup_sessions = warmup_sessions


def measure(session, budget: Budget, *, start: int = 0, args=()) -> np.ndarray:
    """Run sessions (after warm-up) until the step target or the time budget is reached; step times in ns."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for w in range(budget.warmup_sessions):
            for _ in session(start + 10_000 + w, *args):
                pass
        times: list[int] = []
        gc.collect()
        gc.disable()
        try:
            t_end = time.perf_counter() + budget.max_seconds
            i = start
            while len(times) < budget.target_steps and time.perf_counter() < t_end:
                for dt in session(i, *args):
                    times.append(dt)
                    if len(times) >= budget.target_steps or time.perf_counter() >= t_end:
                        break
                i += 1
        finally:
            gc.enable()
    return np.asarray(times, dtype=np.int64)


def summarise(times_ns: np.ndarray):
    if times_ns.size == 0:
        return float("nan"), float("nan"), 0
    us = times_ns / 1000.0
    return float(np.median(us)), float(np.percentile(us, 99)), int(us.size)


def blas_info() -> str:
    try:
        import threadpoolctl
        import scipy.linalg  # noqa: F401 - load scipy's BLAS too, so that it is listed
    except ImportError:
        return "threadpoolctl not installed"
    parts = []
    for d in threadpoolctl.threadpool_info():
        parts.append(f"{d.get('internal_api')} {d.get('version')} ({d.get('prefix')}): kernel "
                     f"{d.get('architecture', '?')}, {d.get('num_threads')} threads")
    return "; ".join(parts) or "none found"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version_of(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fmt(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:,.1f}" if x < 10_000 else f"{x:,.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fast, rough run (seconds)")
    ap.add_argument("--no-peers", action="store_true", help="skip catsim and adaptivetesting")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="bank sizes, comma-separated")
    ap.add_argument("--max-items", type=int, default=40, help="questions per session (default 40)")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--out", help="also write the markdown report to this file")
    args = ap.parse_args(argv)

    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if args.quick:
        fast = Budget(300, 0.3, 1)
        peer = Budget(40, 0.5, 0)
    else:
        fast = Budget(20_000, 3.0, 3)
        peer = Budget(10_000, 6.0, 1)

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    rows = []  # (n, selector, engine, model, median, p99, steps)
    notes = []
    peers_wanted = not args.no_peers
    have_catsim = peers_wanted and version_of("catsim") is not None
    have_at = peers_wanted and version_of("adaptivetesting") is not None

    for n in sizes:
        max_items = min(args.max_items, n)
        design_doc = {"min_items": 0, "max_items": max_items, "se_target": None}
        a, b = grm_params(n, args.seed)
        grm_bank = ItemBank.from_params(a, b, id=f"grm{n}")
        grm_work = Workload(a, b, args.seed)
        a2, b2 = twopl_params(n, args.seed)
        bank2 = ItemBank.from_params(a2, b2[:, None], id=f"2pl{n}")
        work2 = Workload(a2, b2[:, None], args.seed)

        for sel in GRM_SELECTORS:
            design = Design.from_dict(dict(design_doc, selection=sel))
            grm_bank.grid(design.grid_theta())  # tables are built once per bank, not per step
            t = measure(catprom_engine(grm_bank, design, grm_work), fast)
            rows.append((n, sel, "cat-prom", "GRM-5", *summarise(t)))
            if sel in ("mfi", "mpwi"):
                t = measure(numpy_engine(grm_bank, design, grm_work, sel), fast)
                rows.append((n, sel, "bare numpy kernel", "GRM-5", *summarise(t)))
        for sel in ("mfi", "mpwi"):
            design = Design.from_dict(dict(design_doc, selection=sel))
            t = measure(catprom_engine(bank2, design, work2), fast)
            rows.append((n, sel, "cat-prom", "2PL", *summarise(t)))

        if have_catsim:
            session, _ = catsim_engine(a2, b2, work2)
            t = measure(session, peer, args=(max_items,))
            rows.append((n, "mfi", "catsim", "2PL", *summarise(t)))
        if have_at:
            for est in ("eap", "ml"):
                session = adaptivetesting_engine(a2, b2, work2, est)
                t = measure(session, peer, args=(max_items,))
                rows.append((n, "mfi", f"adaptivetesting ({est.upper()})", "2PL", *summarise(t)))

    if peers_wanted and not have_catsim:
        notes.append("catsim is not installed (`pip install catsim`): its rows are missing.")
    if peers_wanted and not have_at:
        notes.append("adaptivetesting is not installed (`pip install adaptivetesting`): its rows are missing.")
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    # ratio: against cat-prom on the same bank (size, model) with the same selector
    ref = {(r[0], r[1], r[3]): r[4] for r in rows if r[2] == "cat-prom"}
    order = {"cat-prom": 0, "bare numpy kernel": 1, "catsim": 2}
    sel_order = {s: i for i, s in enumerate(GRM_SELECTORS)}
    rows.sort(key=lambda r: (r[0], r[3] != "GRM-5", sel_order.get(r[1], 9), order.get(r[2], 3), r[2]))

    out = []
    out.append("# CAT step latency: cat-prom and its peers")
    out.append("")
    cmd = " ".join(["python benchmarks/engine_latency.py", *(sys.argv[1:] if argv is None else argv)])
    out.append(f"Command: `{cmd}`, run {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC in {elapsed:.0f} s.")
    out.append("")
    out.append("One step = record the answer, update θ̂ (and its SE), check the stop rules, choose the next item. "
               "cat-prom is timed through `CatSession.answer()` + `CatSession.current_item`. "
               f"Sessions of {args.max_items} questions (design `{{\"min_items\": 0, \"max_items\": {args.max_items}, "
               "\"se_target\": null}`, EAP on 81 points in [-6, 6], N(0,1) prior); the stopping step and the first "
               "item are not counted. µs per step; ratio = median / cat-prom's median on the same bank and selector.")
    out.append("")
    out.append("| items | selector | engine | bank | median µs | p99 µs | ratio to cat-prom | steps timed |")
    out.append("|---:|---|---|---|---:|---:|---:|---:|")
    for n, sel, eng, model, med, p99, cnt in rows:
        r = ref.get((n, sel, model))
        ratio = "1.00" if eng == "cat-prom" else (f"{med / r:,.2f}" if r and np.isfinite(med) else "n/a")
        out.append(f"| {n} | {sel.upper()} | {eng} | {model} | {fmt(med)} | {fmt(p99)} | {ratio} | {cnt:,} |")
    out.append("")
    out.append("Targets (reported, not asserted): cat-prom median step ≤ 20 µs at 300 items and ≤ 30 µs at "
               "1000 items (five-category GRM, MFI and MPWI).")
    out.append("")
    for n, target in TARGETS_US.items():
        for sel in ("mfi", "mpwi"):
            med = ref.get((n, sel, "GRM-5"))
            if med is None:
                continue
            verdict = "met" if med <= target else "MISSED"
            out.append(f"- {n} items, {sel.upper()}: {med:.1f} µs vs ≤ {target:.0f} µs: **{verdict}**")
    out.append("")
    out.append("## Settings")
    out.append("")
    out.append("- Banks: five-category GRM items, a ~ lognormal(log 1.8, 0.35), thresholds spread by "
               "U(0.4, 1.2) gaps around a location ~ N(0.3, 0.8); peers (dichotomous only) and the 2PL rows: "
               "a ~ lognormal(log 1.5, 0.3), b ~ N(0, 1), c = 0, d = 1. Simulees θ ~ N(0, 1); every answer drawn "
               f"from the model before the session. Seed {args.seed}.")
    out.append("- cat-prom: `CatSession(bank, design, seed=i)`, no exposure control or content rules; "
               "KL = posterior-weighted Kullback–Leibler, MEPV = minimum expected posterior variance.")
    out.append("- bare numpy kernel: cat-prom's precomputed arrays with nothing around them: `lp += logP[:, j, k]`, "
               "EAP mean and SD on the grid, criterion (MFI: nearest row of the 0.01-step information table; "
               "MPWI: `w @ info`), `argmax(score + penalty)`. No validation, no log, no stop rules.")
    if have_catsim:
        out.append(f"- catsim {version_of('catsim')}: `NumericalSearchEstimator()` (method `bounded`, "
                   "Dodd's heuristic on all-equal patterns: a maximum-likelihood θ̂, no SE) + `MaxInfoSelector()` "
                   "(r_max = 1), both called standalone with `item_bank`, `administered_items`, `response_vector`, "
                   "`est_theta`; step = append the answer, `estimate`, `select`. catsim has no MPWI/KL/MEPV for "
                   "this comparison (its `IntervalInfoSelector` integrates each item with `scipy.integrate.quad`, "
                   "not posterior-weighted). numexpr threads: "
                   f"{_numexpr_threads()}.")
    if have_at:
        out.append(f"- adaptivetesting {version_of('adaptivetesting')}: dichotomous 1-4PL only (no GRM). "
                   "`TestAssembler(pool, ..., ability_estimator=ExpectedAPosteriori, estimator_args={prior: "
                   "NormalPrior(0, 1), optimization_interval: (-10, 10)}, item_selector=maximum_information_criterion, "
                   "simulation=True)` with answers as the pool's `simulated_responses`; the ML rows use "
                   "`MLEstimator` instead. Step = one `run_test_once()` (select, answer, estimate θ and SE, drop the "
                   "item, record the result). Fewer steps are timed for it: each step takes milliseconds.")
    out.append(f"- Budgets per row: cat-prom and numpy up to {fast.target_steps:,} steps or {fast.max_seconds:g} s "
               f"after {fast.warmup_sessions} warm-up session(s); peers up to {peer.target_steps:,} steps or "
               f"{peer.max_seconds:g} s after {peer.warmup_sessions} warm-up session(s). Garbage collector off "
               "while timing; `time.perf_counter_ns` around each step.")
    for note in notes:
        out.append(f"- {note}")
    out.append("")
    out.append("## Machine")
    out.append("")
    out.append(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; Python {platform.python_version()} "
               f"({platform.python_implementation()}), {platform.system()} {platform.release()}")
    out.append(f"- numpy {np.__version__}, scipy {version_of('scipy')}, cat-prom {version_of('cat-prom')}")
    out.append(f"- BLAS: {blas_info()}")
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                      "OMP_NUM_THREADS") if k in os.environ}
    out.append(f"- BLAS environment: {', '.join(f'{k}={v}' for k, v in env.items()) or 'none set'}")
    if load_before is not None:
        out.append(f"- load average (1 min) before / after the run: {load_before[0]:.2f} / {load_after[0]:.2f} "
                   "(anything else running on these 2 cores shows up in the p99 column)")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


def _numexpr_threads() -> str:
    try:
        import numexpr
        return str(numexpr.get_num_threads())
    except Exception:  # pragma: no cover - numexpr comes with catsim
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())

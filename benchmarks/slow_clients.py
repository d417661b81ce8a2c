#!/usr/bin/env python3
"""Slow clients against `cat-prom serve`: are /healthz and answers still served while N connections
each send one request-header line every 2 s and never finish?

Starts ``cat-prom serve`` (default settings: one worker per CPU, writes on its event loop, reads on 2 threads) on a fresh SQLite
database, opens ``--slow`` such connections (default 200), waits 2 s, then measures, one after
another: ``--probes`` times ``GET /healthz`` on a new connection, and one patient answering
sittings over a keep-alive connection (``POST /v1/sessions/{id}/responses``, a new sitting when
one finishes). Each probe has a ``--timeout`` (default 2 s); a probe that times out counts as a
failure, and after 10 failures the server is called starved and probing stops. Prints a Markdown
table: probes, failures, p50/p99/max latency (ms), and how many slow connections were still open
at the end (the server may close them after ``CAT_PROM_REQUEST_TIMEOUT``, 30 s by default).

    .venv/bin/python benchmarks/slow_clients.py                      # this checkout
    .venv/bin/python benchmarks/slow_clients.py --compare-with DIR   # and another checkout (before)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from api_load import (Conn, banks_folder, describe_checkout, prepare_db, start_server,  # noqa: E402
                      stop_server)

START = {"banks": ["pain-intensity", "pain-interference"], "patient": "pt-slow-bench"}


async def slow_client(host, port, i, every_s, stop, opened):
    """One connection that sends a header line every ``every_s`` seconds until ``stop``."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    opened["now"] += 1
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: slow{i}\r\n".encode())
        k = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except asyncio.TimeoutError:
                pass
            if reader.at_eof() or writer.is_closing():
                break
            k += 1
            writer.write(f"X-Slow-{k}: {k}\r\n".encode())
            try:
                await writer.drain()
            except ConnectionError:
                break
        else:
            return
    finally:
        if stop.is_set() and not writer.is_closing():
            opened["at_end"] += 1
        opened["now"] -= 1
        writer.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


async def probe(host, port, key, n_probes, timeout_s):
    """(healthz latencies, answer latencies, failures, starved?) measured one request at a time."""
    health, answers, failures = [], [], 0
    patient = Conn(host, port, key, keep_alive=True, timeout=timeout_s)
    view = None
    for _ in range(n_probes):
        if failures >= 10:
            return health, answers, failures, True
        t0 = time.perf_counter()
        try:
            conn = Conn(host, port, key, keep_alive=False, timeout=timeout_s)
            status, _ = await asyncio.wait_for(conn.request("GET", "/healthz"), timeout_s)
            conn.close()
            if status != 200:
                raise RuntimeError(status)
            health.append((time.perf_counter() - t0) * 1000)
        except Exception:  # noqa: BLE001 - a failed probe is the measurement
            failures += 1
        try:
            if view is None or view["status"] != "in_progress":
                status, view = await asyncio.wait_for(patient.request("POST", "/v1/sessions", START), timeout_s)
                if status != 201:
                    raise RuntimeError(status)
            q = view["question"]
            body = {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][len(q["options"]) // 2]["value"]}
            t0 = time.perf_counter()
            status, nv = await asyncio.wait_for(
                patient.request("POST", f"/v1/sessions/{view['id']}/responses", body), timeout_s)
            if status != 200:
                raise RuntimeError(status)
            answers.append((time.perf_counter() - t0) * 1000)
            view = nv
        except Exception:  # noqa: BLE001
            failures += 1
            view = None
    patient.close()
    return health, answers, failures, False


async def measure(host, port, key, n_slow, n_probes, timeout_s, every_s):
    stop = asyncio.Event()
    opened = {"now": 0, "at_end": 0}
    slow = [asyncio.create_task(slow_client(host, port, i, every_s, stop, opened)) for i in range(n_slow)]
    await asyncio.sleep(every_s)  # every slow connection is open and has sent a line or two
    open_at_start = opened["now"]
    result = await probe(host, port, key, n_probes, timeout_s)
    open_at_end = opened["now"]
    stop.set()
    await asyncio.gather(*slow, return_exceptions=True)
    return result, open_at_start, open_at_end


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slow", type=int, default=200, help="slow connections (default 200)")
    ap.add_argument("--probes", type=int, default=300, help="healthz probes and answers each (default 300)")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds before a probe counts as failed")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between a slow client's header lines")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per worker for reads (default: cat-prom serve's, 2; 0: every request on the loop)")
    ap.add_argument("--compare-with", metavar="DIR", help="also measure another checkout's server (before)")
    args = ap.parse_args(argv)

    env_line = (f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"load average before start {os.getloadavg()[0]:.2f}")
    print(env_line, file=sys.stderr)
    banks_dir, tmp_banks = banks_folder(None, START["banks"])
    servers = [("this checkout", None)]
    if args.compare_with:
        servers.insert(0, (f"before ({describe_checkout(args.compare_with)})", args.compare_with))
    rows = []
    for label, repo in servers:
        tmpdir = tempfile.mkdtemp(prefix="cat-prom-slow-")
        try:
            url, schema, key = prepare_db("sqlite", None, tmpdir)
            proc, port, cmd = start_server(url, schema, banks_dir, args.workers, f"{tmpdir}/server.log",
                                           args.threads, repo)
            try:
                (health, answers, failures, starved), open0, open1 = asyncio.run(
                    measure("127.0.0.1", port, key, args.slow, args.probes, args.timeout, args.every))
            finally:
                stop_server(proc)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        for what, xs in (("GET /healthz (new connection)", health), ("answer (keep-alive)", answers)):
            rows.append(dict(server=label, what=what, n=len(xs), failures=failures, starved=starved,
                             p50=pct(xs, 50), p99=pct(xs, 99), max=max(xs) if xs else float("nan"),
                             open0=open0, open1=open1, load=os.getloadavg()[0]))
            print(f"  {label}: {what}: {len(xs)} ok, p99 {rows[-1]['p99']:.1f} ms; failures {failures}"
                  f"{' (starved)' if starved else ''}", file=sys.stderr)
    if tmp_banks:
        shutil.rmtree(tmp_banks, ignore_errors=True)

    threads = args.threads if args.threads is not None else int(os.environ.get("CAT_PROM_THREADS", "2"))
    app_on = f"writes on their event loops, reads on {threads} threads" if threads else "every request on the loop"
    print(f"\n{env_line}; {args.workers} workers, {app_on}, SQLite; {args.slow} slow connections "
          f"(one header line every {args.every:g} s); probe timeout {args.timeout:g} s\n")
    print("| server | probe | succeeded | failed (both probes) | p50 ms | p99 ms | max ms | slow connections open "
          "(start / end) | load avg after |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['what']} | {r['n']} | {r['failures']}{' (starved: stopped)' if r['starved'] else ''}"
              f" | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['open0']} / {r['open1']} | {r['load']:.2f} |")
    ok = all(not r["starved"] and r["failures"] == 0 for r in rows if r["server"] == "this checkout")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

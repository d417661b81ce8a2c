#!/usr/bin/env python3
"""Do a clinician's PDF report and a patient's answers get in each other's way on one worker?

Starts ``cat-prom serve`` with ONE worker on a fresh SQLite database (the demo banks), stores six
finished ``pain-core`` sittings of one patient, then times that patient's PDF report
(``GET /v1/patients/{ref}/report?format=pdf``) alone, and again while another patient answers
questions on the same worker (an answer every 10 ms, keep-alive connection). Prints the report's
time and the answers' latency during it, for ``--threads`` 2 (the default: the report, a read,
runs on a thread; answers, writes, on the event loop) and 0 (every request on the event loop),
or for the values given.

    .venv/bin/python benchmarks/report_stall.py                 # --threads 2 and 0
    .venv/bin/python benchmarks/report_stall.py --threads 2

Nothing is asserted: it is a measurement (docs/api.md, Operating notes, quotes it).
"""
from __future__ import annotations

import argparse
import http.client
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "api"))

from apiserver import Server, request  # noqa: E402

from api import keys as keys_mod  # noqa: E402
from api.store import SessionStore  # noqa: E402

REPORT = "/v1/patients/p-report/report?format=pdf"


def _sitting(srv, h, patient, stop=None, lat=None):
    status, v = request(srv.base, "POST", "/v1/sessions", {"battery": "pain-core", "patient": patient}, h)
    if status != 201:
        raise SystemExit(f"could not start a sitting: {status} {v}")
    while v["status"] == "in_progress" and not (stop is not None and stop.is_set()):
        q = v["question"]
        t = time.perf_counter()
        status, v = request(srv.base, "POST", f"/v1/sessions/{v['id']}/responses",
                            {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][1]["value"]}, h)
        if lat is not None:
            lat.append((t, time.perf_counter()))
            time.sleep(0.01)


def _report(srv, h) -> tuple[float, float]:
    """(start, end) of one PDF report request."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection(*srv.base, timeout=120)
    try:
        conn.request("GET", REPORT, headers=h)
        r = conn.getresponse()
        r.read()
    finally:
        conn.close()
    if r.status != 200:
        raise SystemExit(f"the report failed: {r.status}")
    return t, time.perf_counter()


def measure(threads: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="cat-prom-report-stall-")
    try:
        url = f"sqlite:///{tmp}/db.sqlite"
        db = SessionStore(url)
        db.migrate()
        app_h = {"Authorization": "Bearer " + keys_mod.create_key(db, role="patient-app", name="bench")["key"]}
        clin_h = {"Authorization": "Bearer " + keys_mod.create_key(db, role="clinician", name="bench")["key"]}
        db.dispose()
        srv = Server(db_url=url, banks_dir=REPO / "item_banks", workers=1, threads=threads,
                     log_path=f"{tmp}/server.log").wait_ready()
        try:
            for _ in range(6):
                _sitting(srv, app_h, "p-report")
            t0, t1 = _report(srv, clin_h)
            alone = t1 - t0
            lat, stop = [], threading.Event()

            def answers():
                while not stop.is_set():
                    _sitting(srv, app_h, "p-other", stop, lat)
            th = threading.Thread(target=answers)
            th.start()
            time.sleep(0.1)
            r0, r1 = _report(srv, clin_h)
            busy = r1 - r0
            time.sleep(0.1)
            stop.set()
            th.join()
            # every answer whose request overlapped the report's
            during = [e - s for s, e in lat if e > r0 and s < r1]
        finally:
            srv.stop()
        return {"threads": threads, "alone_ms": alone * 1e3, "busy_ms": busy * 1e3, "n": len(during),
                "median_ms": statistics.median(during) * 1e3 if during else float("nan"),
                "max_ms": max(during) * 1e3 if during else float("nan")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, action="append",
                    help="cat-prom serve --threads (repeatable; default: 2 and 0)")
    args = ap.parse_args(argv)
    print(f"vm: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average before start "
          f"{os.getloadavg()[0]:.2f}; 1 worker, SQLite, demo banks\n")
    print("| `--threads` | PDF report alone (ms) | PDF report with answers running (ms) | answers during it | "
          "their median (ms) | their max (ms) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for t in args.threads or [2, 0]:
        r = measure(t)
        print(f"| {r['threads']} | {r['alone_ms']:.0f} | {r['busy_ms']:.0f} | {r['n']} | {r['median_ms']:.1f} | "
              f"{r['max_ms']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

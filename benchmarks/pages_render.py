#!/usr/bin/env python
"""Server time of the pages: the patient's question page (GET and the answer POST with its
redirect), and one patient's report as HTML (7 SVG charts + sparkline-free), JSON and PDF
(7 PNG charts at 200 dpi + reportlab), with the patient list.

Workload: the 7-domain demo battery (item_banks/), one patient with 4 finished weekly sittings and
acceptable levels for 6 domains (tests/api/clinicdata.py), SQLite in a temporary folder, the Flask
test client in one process (no network, no browser: the time is the server's). Each request is
timed with ``time.perf_counter`` ``--n`` times after one warm-up; median and 95th percentile.

    .venv/bin/python benchmarks/pages_render.py [--n 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "api")]


def _timed(fn, n):
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return statistics.median(out), out[min(len(out) - 1, int(round(0.95 * (len(out) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    load_before = os.getloadavg()
    import pytest
    from apihelpers import Keys, make_app
    from clinicdata import START, acceptable, sitting

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(REPO / "item_banks", f"sqlite:///{tmp}/bench.sqlite", LOG_LEVEL="ERROR")
        keys = Keys(app)
        c = app.test_client()
        mp = pytest.MonkeyPatch()
        for bank, t in (("pain-intensity", 60), ("pain-interference", 60), ("physical-function", 40),
                        ("nausea", 55), ("constipation", 55), ("drowsiness", 55)):
            acceptable(c, keys["clinician"], "p-1", bank, t)
        for week, position in enumerate((2, 1, 1, 3)):
            sitting(c, keys["patient-app"], "p-1", position, START + dt.timedelta(days=7 * week), mp)
        clin = keys["clinician"]
        rows = []
        for fmt in ("html", "json", "pdf"):
            rows.append((f"GET /v1/patients/p-1/report?format={fmt}", _timed(
                lambda: c.get(f"/v1/patients/p-1/report?format={fmt}", headers=clin), args.n)))
        page = c.get("/clinic/sign-in").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        c.post("/clinic/sign-in", data={"csrf_token": token, "key": clin["Authorization"][7:]})
        rows.append(("GET /clinic/patients (1 patient)", _timed(lambda: c.get("/clinic/patients"), args.n)))
        link = c.post("/v1/patients/p-2/links", json={"battery": "pain-core"}, headers=keys["patient-app"]).json
        path = "/take/" + link["url"].rsplit("/take/", 1)[1]
        rows.append(("GET /take/<token> (a question)", _timed(lambda: c.get(path), args.n)))

        def answer():
            html = c.get(path).get_data(as_text=True)
            form = {k: re.search(rf'name="{k}" value="([^"]*)"', html).group(1) for k in ("csrf_token", "seq", "item_id")}
            value = re.findall(r'name="value" value="([^"]*)"', html)[0]
            c.post(path, data={**form, "value": value, "action": "answer"})
        rows.append(("GET + POST /take/<token> (one answer)", _timed(answer, min(args.n, 12))))
        app.extensions["cat_prom"].store.dispose()
    print(f"load average (1, 5, 15 min) before: {tuple(round(x, 2) for x in load_before)}, after: "
          f"{tuple(round(x, 2) for x in os.getloadavg())}; {os.cpu_count()} CPUs; n = {args.n}")
    print("| request | median ms | p95 ms |\n|---|---|---|")
    for name, (med, p95) in rows:
        print(f"| {name} | {med:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()

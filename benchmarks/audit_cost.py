#!/usr/bin/env python
"""What the audit log costs the answer route: server time of `POST /v1/sessions/{id}/responses`
with the audit hook (one autocommitted INSERT per answer) and with it removed, alternating
sitting by sitting so both see the same machine load.

Workload: the demo battery `pain-core` (item_banks/), answered with the middle option; the Flask
test client in one process (no network: the time is the server's, SQL included); SQLite in a
temporary folder, and PostgreSQL at CAT_PROM_TEST_PG_URL when it answers. Median and 95th
percentile of ``time.perf_counter`` per answer, and the mean CPU time of this process per answer
(``time.process_time``: the service's Python work; the PostgreSQL server's own CPU is not in it).

    .venv/bin/python benchmarks/audit_cost.py [--sittings 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "api")]


def _sitting(client, h, times: list[float]) -> None:
    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-" + uuid.uuid4().hex[:8]}, headers=h)
    view = r.json
    while view["status"] == "in_progress":
        q = view["question"]
        body = {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][len(q["options"]) // 2]["value"]}
        t0, c0 = time.perf_counter(), time.process_time()
        r = client.post(f"/v1/sessions/{view['id']}/responses", json=body, headers=h)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
        assert r.status_code == 200, r.json
        view = r.json


def measure(url: str, sittings: int, **extra) -> dict:
    from apihelpers import Keys, make_app
    from api import audit

    app = make_app(REPO / "item_banks", url, **extra)
    client, h = app.test_client(), Keys(app)["patient-app"]
    funcs = app.after_request_funcs[None]
    on, off = [], []
    _sitting(client, h, [])  # warm-up
    for _ in range(sittings):
        _sitting(client, h, on)
        funcs.remove(audit._record)
        _sitting(client, h, off)
        funcs.append(audit._record)
    app.extensions["cat_prom"].store.dispose()
    def q(xs):
        wall, cpu = [x[0] for x in xs], [x[1] for x in xs]
        return (statistics.median(wall) * 1e3, statistics.quantiles(wall, n=20)[18] * 1e3,
                statistics.mean(cpu) * 1e3, len(xs))
    return {"with audit": q(on), "without": q(off)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sittings", type=int, default=20)
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f} (1 min), cpus: {os.cpu_count()}")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        rows.append(("SQLite", measure(f"sqlite:///{d}/b.sqlite", args.sittings)))
    from services import PG_URL, pg_error
    if pg_error(PG_URL) is None:
        import sqlalchemy as sa
        schema = "bench_" + uuid.uuid4().hex[:8]
        try:
            rows.append(("PostgreSQL", measure(PG_URL, args.sittings, DATABASE_SCHEMA=schema)))
        finally:
            eng = sa.create_engine(PG_URL)
            with eng.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            eng.dispose()
    print("| database | hook | answers | median ms | p95 ms | CPU ms/answer (this process) |")
    print("|---|---|---:|---:|---:|---:|")
    for db, res in rows:
        for k, (med, p95, cpu, n) in res.items():
            print(f"| {db} | {k} | {n} | {med:.2f} | {p95:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()

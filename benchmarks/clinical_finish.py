"""What the clinical layer adds to the answer that finishes a sitting: SQL statements (a number that
does not depend on machine load) and wall time, on SQLite and (if reachable) PostgreSQL.

    .venv/bin/python benchmarks/clinical_finish.py [--pg URL] [--n 30]

For each database: a patient with a goal and three earlier sittings (so previous/baseline change
and the rules all run) finishes a one-domain sitting; the finishing answer is measured with the
clinical layer on (the service as shipped) and off (``sessions.clinical = None``: the answer path
before issue 8). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))
from apibanks import write_banks  # noqa: E402
from apihelpers import Keys, make_app  # noqa: E402

DESIGN = {"min_items": 3, "max_items": 3}


def _finish_one(client, h, patient, counter):
    v = client.post("/v1/sessions", headers=h, json={"banks": ["pain-intensity"], "patient": patient,
                                                      "design": DESIGN}).json
    while True:
        q = v["question"]
        last = v["n_responses"] + 1 == DESIGN["max_items"]
        if last:
            counter["n"] = 0
            t0 = time.perf_counter()
        v = client.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                        json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][4]["value"]}).json
        if last:
            assert v["status"] == "finished"
            return counter["n"], (time.perf_counter() - t0) * 1000


def run(url, banks, n, schema=None):
    app = make_app(banks, url, **({"DATABASE_SCHEMA": schema} if schema else {}))
    store = app.extensions["cat_prom"].store
    counter = {"n": 0}

    @event.listens_for(store.engine, "before_cursor_execute")
    def _count(*a, **k):
        counter["n"] += 1

    c, keys = app.test_client(), Keys(app)
    h = keys["patient-app"]
    out = {}
    for label, clinical in (("clinical layer on", app.extensions["cat_prom"].clinical), ("off (before)", None)):
        app.extensions["cat_prom"].sessions.clinical = clinical
        stmts, ms = [], []
        for i in range(n):
            patient = f"p-{label[:3]}-{i}"
            c.put(f"/v1/patients/{patient}/goals/pain-intensity", headers=h, json={"t_score": 50, "agreed_by": "both"})
            for _ in range(3):
                _finish_one(c, h, patient, counter)
            s, t = _finish_one(c, h, patient, counter)
            stmts.append(s)
            ms.append(t)
        out[label] = (statistics.median(stmts), statistics.median(ms), statistics.quantiles(ms, n=10)[-1])
    store.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    banks = write_banks(tmp / "banks")
    results = {"SQLite": run(f"sqlite:///{tmp / 'b.sqlite'}", banks, args.n)}
    try:
        schema = "bench_" + uuid.uuid4().hex[:8]
        results["PostgreSQL"] = run(args.pg, banks, args.n, schema=schema)
        eng = sa.create_engine(args.pg)
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()
    except sa.exc.OperationalError as e:
        print(f"PostgreSQL skipped: {type(e).__name__}", file=sys.stderr)
    print("| database | finishing answer | SQL statements (median) | wall ms (median) | wall ms (p90) |")
    print("|---|---|---|---|---|")
    for db, rows in results.items():
        for label, (s, m, p90) in rows.items():
            print(f"| {db} | {label} | {s:.0f} | {m:.1f} | {p90:.1f} |")


if __name__ == "__main__":
    main()

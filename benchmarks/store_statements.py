#!/usr/bin/env python3
"""SQL statements (and bytes) the service sends to the database per answer: a count that does not
depend on the machine's load.

Runs the Flask app in-process on a fresh database (SQLite file, or a fresh PostgreSQL schema),
completes ``--sittings`` 4-domain sittings (the synthetic banks of the API tests and
``api_load.py``) through the test client, and counts what reaches the driver:

* SQLite: every statement the ``sqlite3`` connection runs (``set_trace_callback``, so
  ``BEGIN IMMEDIATE``/``COMMIT`` count), and the length of each statement's text with its values
  bound (the SQL as SQLite runs it);
* PostgreSQL: libpq's own protocol trace (``PQtrace``): one statement = one ``Query`` or one
  extended-protocol ``Sync`` (a round trip; psycopg's implicit ``BEGIN`` counts), and the bytes of
  every message the client sends.

Answers are counted twice: with the worker's session cache warm (the normal case: the sitting
was created or last answered on this worker) and cold (the cache cleared before each answer, as
when a request lands on another worker).

    .venv/bin/python benchmarks/store_statements.py --db sqlite
    .venv/bin/python benchmarks/store_statements.py --db postgres
    .venv/bin/python benchmarks/store_statements.py --repo /tmp/cat-prom-before   # another checkout
    .venv/bin/python benchmarks/store_statements.py --cpu-rounds 5                 # also CPU per answer

``--repo`` imports ``api`` and ``cat_prom`` from another checkout (e.g. ``git archive`` of an
older commit), to compare before/after with the same counting.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class Counter:
    def __init__(self):
        self.statements = 0
        self.bytes = 0

    def reset(self) -> tuple[int, int]:
        out = (self.statements, self.bytes)
        self.statements = self.bytes = 0
        return out


def _install_sqlite(engine, counter: Counter) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _trace(dbapi_conn, record):
        def cb(sql):
            counter.statements += 1
            counter.bytes += len(sql.encode())
        dbapi_conn.set_trace_callback(cb)


_MSG = re.compile(r"^F\t(\d+)\t(\w+)", re.M)


class PgTrace:
    """libpq protocol trace of every pooled connection, written to one file and parsed on demand."""

    def __init__(self, engine, counter: Counter):
        from sqlalchemy import event
        import psycopg.pq as pq

        self.counter = counter
        self.path = tempfile.mktemp(prefix="pgtrace-")
        self.f = open(self.path, "w+")
        self.pos = 0

        self.add(engine)

    def add(self, engine) -> None:
        from sqlalchemy import event
        import psycopg.pq as pq

        @event.listens_for(engine, "connect")
        def _trace(dbapi_conn, record):
            dbapi_conn.pgconn.trace(self.f.fileno())
            dbapi_conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def collect(self) -> None:
        self.f.flush()
        with open(self.path) as f:
            f.seek(self.pos)
            text = f.read()
            self.pos = f.tell()
        for n, kind in _MSG.findall(text):
            self.counter.bytes += int(n)
            if kind in ("Query", "Sync"):
                self.counter.statements += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--sittings", type=int, default=20)
    ap.add_argument("--pg-url", default=os.environ.get("CAT_PROM_BENCH_PG_URL", DEFAULT_PG))
    ap.add_argument("--repo", default=str(HERE), help="checkout whose api/ and cat_prom/ to measure")
    ap.add_argument("--cpu-rounds", type=int, default=0, metavar="R",
                    help="first time the answer route's CPU (untraced, cache warm): the least of R rounds of 10 sittings")
    args = ap.parse_args()
    repo = Path(args.repo).resolve()
    sys.path.insert(0, str(repo))
    sys.path.insert(0, str(HERE / "tests" / "api"))
    import sqlalchemy as sa
    from api import create_app
    from api import keys as keys_mod
    from apibanks import write_banks
    from apihelpers import RATE_LIMITS_OFF
    import api
    assert Path(api.__file__).resolve().is_relative_to(repo), f"api imported from {api.__file__}, not {repo}"

    tmp = tempfile.mkdtemp(prefix="store-statements-")
    banks = write_banks(Path(tmp) / "banks")
    schema = None
    if args.db == "sqlite":
        url = f"sqlite:///{tmp}/s.sqlite"
    else:
        url, schema = args.pg_url, "stmts_" + uuid.uuid4().hex[:10]
    # One key answers far faster than any patient: the per-key rate limits (api/limits.py) are off.
    cfg = {"DATABASE_URL": url, "BANKS_DIR": str(banks), "TESTING": True, "LOG_LEVEL": "WARNING",
           "KEY_CACHE_TTL": 3600, **RATE_LIMITS_OFF}
    if schema:
        cfg["DATABASE_SCHEMA"] = schema
    app = create_app(cfg)
    ext = app.extensions["cat_prom"]
    store = getattr(ext, "store", None) or ext.db
    key = keys_mod.create_key(store, role="patient-app", name="statements")["key"]
    h = {"Authorization": "Bearer " + key}
    c = app.test_client()
    cpu_ms = _answer_cpu_ms(c, h, args.cpu_rounds) if args.cpu_rounds else None
    counter = Counter()
    engines = getattr(store, "engines", (store.engine,))
    trace = None
    for engine in engines:
        engine.dispose()  # every connection from here on is traced
        if args.db == "sqlite":
            _install_sqlite(engine, counter)
        elif trace is None:
            trace = PgTrace(engine, counter)
        else:
            trace.add(engine)

    def take():
        if trace is not None:
            trace.collect()
        return counter.reset()

    rows = {"create": [0, 0, 0], "answer (cache warm)": [0, 0, 0], "answer (cache cold)": [0, 0, 0],
            "get": [0, 0, 0]}

    def add(name):
        s, b = take()
        r = rows[name]
        r[0] += 1
        r[1] += s
        r[2] += b

    c.get("/v1/banks", headers=h)  # the key is verified and cached before counting
    take()
    try:
        for i in range(args.sittings):
            cold = i % 2 == 1
            v = c.post("/v1/sessions", json={"battery": "pain-core", "patient": f"p{i}", "seed": i}, headers=h).json
            add("create")
            while v["status"] == "in_progress":
                q = v["question"]
                if cold:
                    ext.sessions.cache.clear()
                    take()
                r = c.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                           json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][2]["value"]})
                assert r.status_code == 200, r.json
                add("answer (cache cold)" if cold else "answer (cache warm)")
                v = r.json
            c.get(f"/v1/sessions/{v['id']}", headers=h)
            add("get")
    finally:
        store.dispose()
        if schema:
            eng = sa.create_engine(args.pg_url)
            with eng.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            eng.dispose()
    print(f"checkout: {repo}  database: {args.db}  sittings: {args.sittings}\n")
    print("| request | n | statements per request | bytes sent per request |")
    print("|---|---:|---:|---:|")
    for name, (n, s, b) in rows.items():
        if n:
            print(f"| {name} | {n} | {s / n:.2f} | {b / n:.0f} |")
    if cpu_ms is not None:
        print(f"\nCPU per answer (cache warm, untraced, this process incl. the Flask test client; least of "
              f"{args.cpu_rounds} rounds of 10 sittings): {cpu_ms:.3f} ms")
    return 0


def _answer_cpu_ms(c, h, rounds: int) -> float:
    """Process CPU time of the answer requests of 10 sittings, per answer; the least of ``rounds``
    rounds (the least is the one least disturbed by other processes on the machine)."""
    import gc
    import time

    def sittings(n, seed0):
        cpu = 0.0
        count = 0
        for i in range(n):
            v = c.post("/v1/sessions", json={"battery": "pain-core", "patient": "cpu", "seed": seed0 + i},
                       headers=h).json
            while v["status"] == "in_progress":
                q = v["question"]
                t0 = time.process_time()
                r = c.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                           json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][2]["value"]})
                cpu += time.process_time() - t0
                count += 1
                v = r.json
        return cpu / count

    sittings(2, 10_000)
    gc.collect()
    gc.freeze()  # as `cat-prom serve` does in each worker
    return 1000 * min(sittings(10, 20_000 + 100 * k) for k in range(rounds))


if __name__ == "__main__":
    sys.exit(main())

"""PostgreSQL: the real server at 127.0.0.1:5432 (required when CI=true), one schema per test."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from apihelpers import Keys, make_app, run_session
from apiserver import REPO, Server, request

from api import keys as keys_mod
from api.store import SessionStore as Database

pytestmark = pytest.mark.postgres


def test_full_session_on_postgres(pg_app):
    k = Keys(pg_app)
    c = pg_app.test_client()
    first, last, n = run_session(c, k["patient-app"])
    assert last["status"] == "finished" and len(last["results"]) == 4
    g = c.get(f"/v1/sessions/{first['id']}", headers=k["patient-app"]).json
    assert len(g["answers"]) == n
    r = c.get("/v1/patients/p-001/results", headers=k["clinician"]).json
    assert [s["session_id"] for s in r["sessions"]] == [first["id"]]
    assert c.get("/readyz").json["checks"]["database"] == "ok"


def test_idempotent_retry_on_postgres(pg_app):
    h = Keys(pg_app)["patient-app"]
    c = pg_app.test_client()
    v = c.post("/v1/sessions", json={"battery": "pain-core", "patient": "p"}, headers=h).json
    body = {"seq": 1, "item_id": v["question"]["item_id"], "value": 3}
    r1 = c.post(f"/v1/sessions/{v['id']}/responses", json=body, headers=h)
    r2 = c.post(f"/v1/sessions/{v['id']}/responses", json=body, headers=h)
    assert r1.status_code == r2.status_code == 200 and r1.json == r2.json
    r3 = c.post(f"/v1/sessions/{v['id']}/responses", json=dict(body, value=4), headers=h)
    assert r3.status_code == 409


def test_concurrent_answers_serialised_by_row_lock(banks_dir, pg_url, pg_schema):
    apps = [make_app(banks_dir, pg_url, DATABASE_SCHEMA=pg_schema) for _ in range(3)]
    h = Keys(apps[0])["patient-app"]
    try:
        for trial in range(4):
            v = apps[0].test_client().post("/v1/sessions", json={"battery": "pain-core", "patient": "p"},
                                           headers=h).json
            out = [None] * 5
            barrier = threading.Barrier(5)

            def go(i):
                c = apps[i % 3].test_client()
                barrier.wait()
                out[i] = c.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                                json={"seq": 1, "item_id": v["question"]["item_id"], "value": i + 1})

            ts = [threading.Thread(target=go, args=(i,)) for i in range(5)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            codes = sorted(r.status_code for r in out)
            assert codes == [200, 409, 409, 409, 409], codes
            g = apps[2].test_client().get(f"/v1/sessions/{v['id']}", headers=h).json
            assert g["n_responses"] == 1
            winner = next(r for r in out if r.status_code == 200)
            assert winner.json["n_responses"] == 1 and g["answers"][0]["value"] in range(1, 6)
    finally:
        for a in apps:
            a.extensions["cat_prom"].store.dispose()


def test_concurrent_migrations_from_many_processes(pg_url, pg_schema):
    code = ("import sys; from api.store import SessionStore as Database; "
            "db = Database(sys.argv[1], schema=sys.argv[2]); db.migrate(); db.dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url, pg_schema], cwd=str(REPO),
                              stderr=subprocess.PIPE) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
    db = Database(pg_url, schema=pg_schema)
    with db.read() as c:
        assert c.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert c.execute(sa.text("SELECT count(*) FROM sessions")).scalar_one() == 0
    db.dispose()


@pytest.mark.slow
def test_session_continues_on_another_server_process(banks_dir, pg_url, pg_schema, tmp_path):
    """Two `cat-prom serve` processes (2 workers each) over one PostgreSQL: a patient switches between them."""
    db = Database(pg_url, schema=pg_schema)
    db.migrate()
    h = {"Authorization": "Bearer " + keys_mod.create_key(db, role="patient-app", name="t")["key"]}
    db.dispose()
    a = Server(db_url=pg_url, schema=pg_schema, banks_dir=banks_dir, workers=2, log_path=tmp_path / "a.log")
    b = Server(db_url=pg_url, schema=pg_schema, banks_dir=banks_dir, workers=2, log_path=tmp_path / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        status, v = request(a.base, "POST", "/v1/sessions", {"battery": "pain-core", "patient": "x", "seed": 3}, h)
        assert status == 201
        sid, n = v["id"], 0
        servers = [b, b, a, b, a, a]
        while v["status"] == "in_progress":
            q = v["question"]
            srv = servers[n % len(servers)]
            status, v = request(srv.base, "POST", f"/v1/sessions/{sid}/responses",
                                {"seq": q["seq"], "item_id": q["item_id"], "value": 1 + n % 5}, h)
            assert status == 200, v
            # the other server sees the answer at once
            other = a if srv is b else b
            status, g = request(other.base, "GET", f"/v1/sessions/{sid}", headers=h)
            assert g["n_responses"] == n + 1 and g["question"] == v["question"]
            n += 1
        assert v["status"] == "finished" and len(v["results"]) == 4
        # the same answers in-process give the same items and scores (replay is exact)
        app = make_app(banks_dir, pg_url, DATABASE_SCHEMA=pg_schema)
        c = app.test_client()
        ref = c.post("/v1/sessions", json={"battery": "pain-core", "patient": "x", "seed": 3}, headers=h).json
        m = 0
        while ref["status"] == "in_progress":
            q = ref["question"]
            ref = c.post(f"/v1/sessions/{ref['id']}/responses", headers=h,
                         json={"seq": q["seq"], "item_id": q["item_id"], "value": 1 + m % 5}).json
            m += 1
        assert m == n and ref["results"] == v["results"]
        app.extensions["cat_prom"].store.dispose()
    finally:
        a.stop()
        b.stop()


def test_answer_statement_on_a_killed_connection_is_503_then_retried(pg_app, pg_url):
    """The answer's one statement runs on a pooled driver connection (Database.first_autocommit). When
    PostgreSQL has closed that connection, the answer gets 503 problem+json (nothing stored), the broken
    connection leaves the pool, and the same answer sent again is taken."""
    h = Keys(pg_app)["patient-app"]
    c = pg_app.test_client()
    store = pg_app.extensions["cat_prom"].store
    v = c.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-kill"}, headers=h).json
    q = v["question"]
    v = c.post(f"/v1/sessions/{v['id']}/responses", headers=h,
               json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][1]["value"]}).json
    store._autocommit_engine.dispose()  # from here on one connection serves the autocommit pool
    fairy = store._autocommit_engine.raw_connection()
    pid = fairy.driver_connection.info.backend_pid
    fairy.close()
    killer = sa.create_engine(pg_url)
    with killer.connect() as k:
        assert k.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one() is True
    killer.dispose()
    q = v["question"]
    body = {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][2]["value"]}
    r = c.post(f"/v1/sessions/{v['id']}/responses", headers=h, json=body)
    assert r.status_code == 503 and r.mimetype == "application/problem+json", r.json
    assert r.json["type"] == "urn:cat-prom:problem:service-unavailable"
    g = c.get(f"/v1/sessions/{v['id']}", headers=h).json
    assert len(g["answers"]) == 1  # nothing was stored
    r = c.post(f"/v1/sessions/{v['id']}/responses", headers=h, json=body)
    assert r.status_code == 200, r.json
    assert r.json["question"]["seq"] == q["seq"] + 1 or r.json["status"] != "in_progress"
    assert len(c.get(f"/v1/sessions/{v['id']}", headers=h).json["answers"]) == 2


def test_driver_statements_are_core_compiled(pg_url):
    """The driver-level path runs SQLAlchemy's own SQL for the dialect, with Core's bind processing."""
    from api.store.engine import DriverStatements
    from api.store.session_queries import _ADVANCE_PG

    eng = sa.create_engine(pg_url)
    d = DriverStatements(eng.dialect)
    params = {"p_sid": "s", "p_old": 1, "p_version": 2, "p_n": 1, "p_status": "in_progress", "p_updated": None,
              "p_expires": None, "p_finished": None, "p_result": None, "p_seq": 1, "p_item": "i", "p_value": "3",
              "p_declined": 0, "p_at": None}
    sql, values = d.compile(_ADVANCE_PG, params)
    assert sql == str(_ADVANCE_PG.compile(dialect=eng.dialect))
    assert values["p_declined"] is False  # Boolean's bind processor ran
    assert d.compile(_ADVANCE_PG, params)[0] is sql  # compiled once
    with pytest.raises(ValueError, match="positional"):
        DriverStatements(sa.create_engine("sqlite://").dialect).compile(_ADVANCE_PG, params)
    eng.dispose()


def test_answer_statement_interrupted_never_returns_its_connection_to_the_pool(pg_app, monkeypatch):
    """Anything but a driver error in the middle of the statement (an interrupt, a bug) leaves the
    connection in an unknown state: it is dropped, and the next statement gets a fresh one."""
    import psycopg

    store = pg_app.extensions["cat_prom"].store
    store._autocommit_engine.dispose()
    stmt = sa.text("SELECT pg_backend_pid()")
    first = store.first_autocommit(stmt, {})[0]
    assert store.first_autocommit(stmt, {})[0] == first  # the pool hands the same connection back

    def boom(self, *a, **k):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as m:
        m.setattr(psycopg.Cursor, "execute", boom)
        with pytest.raises(RuntimeError):
            store.first_autocommit(stmt, {})
    assert store.first_autocommit(stmt, {})[0] != first

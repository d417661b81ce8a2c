"""Against real `cat-prom serve` processes on SQLite: durability under kill -9, several workers."""
from __future__ import annotations

import pytest

from apiserver import Server, request

from api import keys as keys_mod
from api.store import SessionStore as Database

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_server_env(tmp_path, banks_dir):
    url = f"sqlite:///{tmp_path / 'server.sqlite'}"
    db = Database(url)
    db.migrate()
    key = keys_mod.create_key(db, role="patient-app", name="t")["key"]
    db.dispose()
    return url, {"Authorization": "Bearer " + key}, tmp_path


@pytest.mark.parametrize("threads", [0, 1, 2])  # every request on the event loop; reads on 1 or 2 threads (default 2)
def test_kill9_loses_no_acknowledged_answer(sqlite_server_env, banks_dir, threads):
    url, h, tmp = sqlite_server_env
    srv = Server(db_url=url, banks_dir=banks_dir, workers=2, threads=threads, log_path=tmp / "a.log").wait_ready()
    try:
        status, v = request(srv.base, "POST", "/v1/sessions", {"battery": "pain-core", "patient": "k9"}, h)
        assert status == 201
        sid = v["id"]
        acked = []
        for i in range(6):
            q = v["question"]
            body = {"seq": q["seq"], "item_id": q["item_id"], "value": 1 + i % 5}
            status, v = request(srv.base, "POST", f"/v1/sessions/{sid}/responses", body, h)
            assert status == 200
            acked.append(body)
        next_q = v["question"]
    finally:
        srv.kill9()
    srv2 = Server(db_url=url, banks_dir=banks_dir, workers=2, log_path=tmp / "b.log").wait_ready()
    try:
        status, g = request(srv2.base, "GET", f"/v1/sessions/{sid}", headers=h)
        assert status == 200
        assert g["n_responses"] == 6
        assert [{"seq": a["seq"], "item_id": a["item_id"], "value": a["value"]} for a in g["answers"]] == acked
        assert g["question"] == next_q  # the replayed session offers the same next question
        # and it carries on to the end on the new server
        v = g
        while v["status"] == "in_progress":
            q = v["question"]
            status, v = request(srv2.base, "POST", f"/v1/sessions/{sid}/responses",
                                {"seq": q["seq"], "item_id": q["item_id"], "value": 2}, h)
            assert status == 200
        assert len(v["results"]) == 4
    finally:
        srv2.stop()


@pytest.mark.parametrize("workers, threads", [(3, 1), (1, 4), (2, 2), (2, 0)])
def test_many_patients_on_several_workers(sqlite_server_env, banks_dir, workers, threads):
    """Sessions move between the workers (or threads) of one server (no sticky routing) and all finish."""
    import concurrent.futures as cf
    url, h, tmp = sqlite_server_env
    srv = Server(db_url=url, banks_dir=banks_dir, workers=workers, threads=threads,
                 log_path=tmp / "c.log").wait_ready()

    def patient(i):
        status, v = request(srv.base, "POST", "/v1/sessions", {"battery": "pain-core", "patient": f"p{i}"}, h)
        assert status == 201
        n = 0
        while v["status"] == "in_progress":
            q = v["question"]
            status, v = request(srv.base, "POST", f"/v1/sessions/{v['id']}/responses",
                                {"seq": q["seq"], "item_id": q["item_id"], "value": 1 + (i + n) % 5}, h)
            assert status == 200, v
            n += 1
        return n

    try:
        with cf.ThreadPoolExecutor(8) as ex:
            counts = list(ex.map(patient, range(16)))
        assert all(c >= 16 for c in counts)
    finally:
        srv.stop()


def test_concurrent_migrations_on_one_sqlite_file(tmp_path):
    """Several processes starting at once (gunicorn workers) migrate one SQLite file safely."""
    import subprocess
    import sys

    from apiserver import REPO
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    code = "import sys; from api.store import SessionStore as Database; db = Database(sys.argv[1]); db.migrate(); db.dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=str(REPO), stderr=subprocess.PIPE)
             for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
    import sqlalchemy as sa
    db = Database(url)
    with db.read() as c:
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [_head_revision()]
        assert c.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    db.dispose()


def test_server_level_rejections_are_problem_json(sqlite_server_env, banks_dir):
    """gunicorn answers an over-long request line (414) or header (431) itself, before the app; those
    were HTML pages (schemathesis: undocumented Content-Type text/html). `serve` makes them problem+json."""
    import http.client
    import json
    url, h, tmp = sqlite_server_env
    srv = Server(db_url=url, banks_dir=banks_dir, workers=1, log_path=tmp / "e.log").wait_ready()
    try:
        for path, headers, status, code in [
                ("/v1/patients/p-1/results?x=" + "a" * 5000, h, 414, "uri-too-long"),
                ("/v1/banks", {**h, "X-Big": "b" * 9000}, 431, "header-fields-too-large")]:
            conn = http.client.HTTPConnection(*srv.base, timeout=10)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                assert resp.status == status
                assert resp.getheader("Content-Type") == "application/problem+json"
                doc = json.loads(resp.read())
                assert doc["type"] == f"urn:cat-prom:problem:{code}" and doc["status"] == status
            finally:
                conn.close()
        status, _ = request(srv.base, "GET", "/v1/banks", headers=h)  # the server still serves
        assert status == 200
    finally:
        srv.stop()


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from api.store.engine import MIGRATIONS_DIR
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()

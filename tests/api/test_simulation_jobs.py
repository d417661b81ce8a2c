"""Simulations as jobs: POST /v1/simulations queues (202 + Location), `cat-prom worker` runs the job,
GET /v1/simulations/{id} gives its status and result; per-tenant limits on size and concurrency."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from apihelpers import Keys, make_app
from api.store import utcnow
from api.store.jobs import MAX_ATTEMPTS
from api.worker import Worker, WorkerConfig

REPO = Path(__file__).resolve().parents[2]
BODY = {"bank": "pain-interference", "n": 50, "seed": 3, "design": {"max_items": 5}}


def _worker(app, name=None):
    ext = app.extensions["cat_prom"]
    return Worker(ext.store, WorkerConfig(), registry=ext.registry, name=name)


def run_simulation(app, client, headers, body) -> dict:
    """Queue a simulation, run it with an in-process worker, return its result."""
    r = client.post("/v1/simulations", json=body, headers=headers)
    assert r.status_code == 202, r.json
    assert _worker(app).run_job() == 1
    job = client.get(r.headers["Location"], headers=headers).json
    assert job["status"] == "done", job
    return job["result"]


def test_queue_poll_and_result(app, client, keys):
    h = keys["researcher"]
    r = client.post("/v1/simulations", json=BODY, headers=h)
    assert r.status_code == 202 and r.headers["Location"] == f"/v1/simulations/{r.json['id']}"
    job = r.json
    assert job["status"] == "queued" and job["result"] is None and job["request"] == BODY
    assert client.get(r.headers["Location"], headers=h).json["status"] == "queued"
    assert _worker(app).run_job() == 1
    done = client.get(r.headers["Location"], headers=h).json
    assert done["status"] == "done" and done["error"] is None and done["started_at"] and done["finished_at"]
    assert done["result"]["n"] == 50 and done["result"]["test_length"]["max"] <= 5
    assert _worker(app).run_job() == 0  # nothing left
    # the same request and seed give the same figures (a job rerun after a crash changes nothing)
    assert run_simulation(app, client, h, BODY)["rmse"] == done["result"]["rmse"]
    # tenant and role scope
    assert client.get(r.headers["Location"], headers=keys["researcher@other"]).status_code == 404
    assert client.get(r.headers["Location"], headers=keys["clinician"]).status_code == 403
    assert client.get("/v1/simulations/sim_nope", headers=h).status_code == 404


def test_size_and_concurrency_limits(banks_dir, tmp_path):
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'l.sqlite'}", SIM_MAX_SIMULEES=100, SIM_MAX_ACTIVE=1)
    keys, client = Keys(app), app.test_client()
    h = keys["researcher"]
    r = client.post("/v1/simulations", json={**BODY, "n": 101}, headers=h)
    assert r.status_code == 422 and "n" in r.json["errors"] and "CAT_PROM_SIM_MAX_SIMULEES" in r.json["detail"]
    assert client.post("/v1/simulations", json=BODY, headers=h).status_code == 202
    r = client.post("/v1/simulations", json=BODY, headers=h)
    assert r.status_code == 429 and r.headers["Retry-After"] and "CAT_PROM_SIM_MAX_ACTIVE" in r.json["detail"]
    assert client.post("/v1/simulations", json=BODY, headers=keys["researcher@other"]).status_code == 202
    assert _worker(app).run_job() == 1 and _worker(app).run_job() == 1
    assert client.post("/v1/simulations", json=BODY, headers=h).status_code == 202  # done jobs do not count
    small = make_app(banks_dir, f"sqlite:///{tmp_path / 's.sqlite'}", SIM_MAX_ITEMS=3)
    r = small.test_client().post("/v1/simulations", json=BODY, headers=Keys(small)["researcher"])
    assert r.status_code == 422 and "bank" in r.json["errors"]
    app.extensions["cat_prom"].store.dispose()
    small.extensions["cat_prom"].store.dispose()


def test_a_job_that_cannot_run_fails_with_its_reason(app, keys):
    store = app.extensions["cat_prom"].store
    store.enqueue_job(id="sim_gone", tenant="default", key_id="k", request={**BODY, "bank": "gone"}, now=utcnow(),
                      max_active=5)
    assert _worker(app).run_job() == 1
    job = store.get_job("default", "sim_gone")
    assert job.status == "failed" and "gone" in job.error and job.result is None


def test_an_interrupted_job_is_run_again_then_given_up(app):
    store = app.extensions["cat_prom"].store
    store.enqueue_job(id="sim_x", tenant="default", key_id="k", request=BODY, now=utcnow(), max_active=5)
    t0 = utcnow()
    lease = dt.timedelta(seconds=60)
    a = store.claim_job(worker="w1", now=t0, lease=lease)
    assert a.status == "running" and store.claim_job(worker="w2", now=t0, lease=lease) is None  # held
    for i in range(2, MAX_ATTEMPTS + 1):  # w1 "died": after each lease another worker takes it
        again = store.claim_job(worker=f"w{i}", now=t0 + 2 * i * lease, lease=lease)
        assert again.id == "sim_x" and again.attempts == i
    assert not store.finish_job("sim_x", worker="w1", now=t0, result={"x": 1})  # w1 lost its lease
    assert store.claim_job(worker="w9", now=t0 + 10 * lease, lease=lease) is None
    job = store.get_job("default", "sim_x")
    assert job.status == "failed" and "interrupted" in job.error


@pytest.mark.postgres
def test_postgres_claims_are_exclusive_and_the_active_limit_holds(pg_app):
    store = pg_app.extensions["cat_prom"].store
    made = []

    def enqueue(i):
        made.append(store.enqueue_job(id=f"sim_{i}", tenant="t", key_id="k", request=BODY, now=utcnow(),
                                      max_active=3))
    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(j is not None for j in made) == 3
    claimed = []

    def claim(i):
        claimed.append(store.claim_job(worker=f"w{i}", now=utcnow(), lease=dt.timedelta(seconds=60)))
    threads = [threading.Thread(target=claim, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [j.id for j in claimed if j is not None]
    assert len(ids) == 3 and len(set(ids)) == 3


def _end_to_end(app, url, schema=None):
    import os
    keys, client = Keys(app), app.test_client()
    h = keys["researcher"]
    r = client.post("/v1/simulations", json=BODY, headers=h)
    assert r.status_code == 202
    env = dict(os.environ, CAT_PROM_LOG_LEVEL="WARNING")
    if schema:
        env["CAT_PROM_DATABASE_SCHEMA"] = schema
    w = subprocess.Popen([sys.executable, "-m", "cat_prom.cli", "worker", "--database-url", url, "--banks-dir",
                          app.config["CAT_PROM_BANKS_DIR"], "--poll", "0.1"], cwd=str(REPO), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True)
    try:
        assert "running simulation jobs" in w.stdout.readline()
        deadline = time.monotonic() + 120
        job = r.json
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = client.get(r.headers["Location"], headers=h).json
        assert job["status"] == "done", job
        assert job["result"]["n"] == BODY["n"]
    finally:
        w.terminate()
        w.wait(timeout=30)


def test_worker_process_runs_a_job_sqlite(app):
    _end_to_end(app, app.config["CAT_PROM_DATABASE_URL"])


@pytest.mark.postgres
def test_worker_process_runs_a_job_postgres(pg_app, pg_schema):
    _end_to_end(pg_app, pg_app.config["CAT_PROM_DATABASE_URL"], schema=pg_schema)


def test_the_documented_job_reply_has_the_real_shape(client, keys):
    import json
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    sec = text[text.index("## 8. Simulation"):]
    doc = json.loads(sec[sec.index("```json") + 7:sec.index("```", sec.index("```json") + 7)])
    real = client.post("/v1/simulations", json=BODY, headers=keys["researcher"]).json
    assert set(doc) == set(real) and doc["status"] == real["status"] == "queued"

"""kill -9 of `cat-prom serve` under concurrent load, on SQLite and PostgreSQL; racing answers.

Load: ``CLIENTS`` patients at once, each on its own keep-alive connection, answering its sitting as
fast as the server replies. After ``ACKED_BEFORE_KILL`` acknowledged answers (HTTP 200 received)
the whole server (master and workers) gets SIGKILL while requests are in flight. A new server on
the same database must then hold every acknowledged answer exactly once, in order, and let every
sitting carry on to its end. The counts are printed (figures in docs/reliability.md):

    .venv/bin/python -m pytest -q -s tests/api/test_kill9_load.py      # CI=true: PostgreSQL required

Racing answers: ``RACERS`` threads (on ``RACERS`` apps, i.e. separate connection pools) send an
answer to the same question of one sitting at once, ``ROUNDS`` times; exactly one wins each race
(200, the others 409), and the sitting then equals a serial replay of the winners in a fresh
sitting with the same seed (same answers, next question, status and results with θ and SE).
"""
from __future__ import annotations

import http.client
import threading

import pytest

from api import keys as keys_mod
from api.store import SessionStore
from apihelpers import Keys, make_app
from apiserver import Server, request

CLIENTS = 16
ACKED_BEFORE_KILL = 200
RACERS = 5
ROUNDS = 200


def _store_and_key(url, schema=None):
    store = SessionStore(url, schema=schema)
    store.migrate()
    key = keys_mod.create_key(store, role="patient-app", name="load")["key"]
    store.dispose()
    return {"Authorization": "Bearer " + key}


class Patient(threading.Thread):
    """One patient answering as fast as the server replies; records what was acknowledged."""

    def __init__(self, base, headers, i, counter, enough):
        super().__init__(daemon=True)
        self.base, self.h, self.i = base, headers, i
        self.counter, self.enough = counter, enough
        self.sid = None
        self.acked: list[dict] = []

    def run(self):
        conn = http.client.HTTPConnection(*self.base, timeout=10)
        try:
            status, v = request(self.base, "POST", "/v1/sessions",
                                {"battery": "pain-core", "patient": f"k9-{self.i}", "seed": self.i}, self.h, conn=conn)
            if status != 201:
                return
            self.sid = v["id"]
            while v["status"] == "in_progress":
                q = v["question"]
                body = {"seq": q["seq"], "item_id": q["item_id"], "value": 1 + (q["seq"] + self.i) % 5}
                status, v = request(self.base, "POST", f"/v1/sessions/{self.sid}/responses", body, self.h, conn=conn)
                if status != 200:
                    return
                self.acked.append(body)
                with self.counter["lock"]:
                    self.counter["n"] += 1
                    if self.counter["n"] >= ACKED_BEFORE_KILL:
                        self.enough.set()
        except (OSError, http.client.HTTPException):
            return  # the server was killed under this request
        finally:
            conn.close()


def _kill9_under_load(tmp_path, banks_dir, url, schema=None):
    h = _store_and_key(url, schema)
    srv = Server(db_url=url, banks_dir=banks_dir, workers=2, schema=schema,
                 log_path=tmp_path / "a.log").wait_ready()
    counter, enough = {"n": 0, "lock": threading.Lock()}, threading.Event()
    patients = [Patient(srv.base, h, i, counter, enough) for i in range(CLIENTS)]
    try:
        for p in patients:
            p.start()
        enough.wait(timeout=120)
    finally:
        srv.kill9()
    for p in patients:
        p.join(timeout=20)
    figures = {"patients": CLIENTS, "sittings": 0, "acknowledged": 0, "lost": 0, "duplicated": 0,
               "stored_unacknowledged": 0, "resumable": 0, "finished_after_restart": 0}
    srv2 = Server(db_url=url, banks_dir=banks_dir, workers=2, schema=schema, log_path=tmp_path / "b.log").wait_ready()
    try:
        for p in patients:
            if p.sid is None:
                continue
            figures["sittings"] += 1
            figures["acknowledged"] += len(p.acked)
            status, g = request(srv2.base, "GET", f"/v1/sessions/{p.sid}", headers=h)
            stored = [{"seq": a["seq"], "item_id": a["item_id"], "value": a["value"]} for a in g["answers"]]
            seqs = [a["seq"] for a in stored]
            figures["duplicated"] += len(seqs) - len(set(seqs))
            figures["lost"] += sum(1 for a in p.acked if a not in stored)
            figures["stored_unacknowledged"] += len(stored) - sum(1 for a in stored if a in p.acked)
            v, ok = g, status == 200 and stored[:len(p.acked)] == p.acked
            while ok and v["status"] == "in_progress":
                q = v["question"]
                status, v = request(srv2.base, "POST", f"/v1/sessions/{p.sid}/responses",
                                    {"seq": q["seq"], "item_id": q["item_id"], "value": 2}, h)
                ok = status == 200
            figures["resumable"] += ok
            figures["finished_after_restart"] += ok and v["status"] == "finished"
    finally:
        srv2.stop()
    return figures


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill9_under_concurrent_load(db, tmp_path, banks_dir, request):
    if db == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'k9.sqlite'}", None
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    f = _kill9_under_load(tmp_path, banks_dir, url, schema)
    print(f"\nkill -9 under load ({db}, 2 workers, serve's default threads): " + ", ".join(f"{k} {v}" for k, v in f.items()))
    assert f["acknowledged"] >= ACKED_BEFORE_KILL and f["sittings"] == CLIENTS
    assert f["lost"] == 0 and f["duplicated"] == 0
    assert f["resumable"] == f["sittings"] == f["finished_after_restart"]


def _view(v):
    """What a sitting is, without its ids and times: answers, next question, status and results."""
    answers = [{k: a[k] for k in a if k != "answered_at"} for a in v["answers"]]
    return {"answers": answers, **{k: v[k] for k in ("status", "n_responses", "next_seq", "question", "results")}}


def _race(apps, h):
    """ROUNDS races over as many sittings as needed; returns (winners per race, mismatches with a serial replay)."""
    c0 = apps[0].test_client()
    winners, mismatches, races, seed = [], 0, 0, 0
    while races < ROUNDS:
        seed += 1
        v = c0.post("/v1/sessions", json={"battery": "pain-core", "patient": f"race-{seed}", "seed": seed}, headers=h).json
        sid, given = v["id"], []
        while v["status"] == "in_progress" and races < ROUNDS:
            q, out = v["question"], [None] * RACERS
            barrier = threading.Barrier(RACERS)

            def go(i, q=q, out=out, barrier=barrier):
                c = apps[i % len(apps)].test_client()
                barrier.wait()
                out[i] = c.post(f"/v1/sessions/{sid}/responses", headers=h,
                                json={"seq": q["seq"], "item_id": q["item_id"], "value": 1 + i % 5})

            ts = [threading.Thread(target=go, args=(i,)) for i in range(RACERS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            codes = sorted(r.status_code for r in out)
            winners.append(codes.count(200) == 1 and codes.count(409) == RACERS - 1)
            races += 1
            won = next(i for i, r in enumerate(out) if r.status_code == 200)
            given.append(1 + won % 5)
            v = c0.get(f"/v1/sessions/{sid}", headers=h).json
        # serial replay of the winners in a fresh sitting with the same seed
        r = c0.post("/v1/sessions", json={"battery": "pain-core", "patient": f"replay-{seed}", "seed": seed},
                    headers=h).json
        for value in given:
            q = r["question"]
            r = c0.post(f"/v1/sessions/{r['id']}/responses", headers=h,
                        json={"seq": q["seq"], "item_id": q["item_id"], "value": value}).json
        mismatches += _view(c0.get(f"/v1/sessions/{r['id']}", headers=h).json) != _view(v)
    return winners, mismatches


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_racing_answers_one_winner_and_equal_to_serial_replay(db, tmp_path, banks_dir, request):
    if db == "sqlite":
        apps = [make_app(banks_dir, f"sqlite:///{tmp_path / 'race.sqlite'}") for _ in range(RACERS)]
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        apps = [make_app(banks_dir, url, DATABASE_SCHEMA=schema) for _ in range(RACERS)]
    try:
        h = Keys(apps[0])["patient-app"]
        winners, mismatches = _race(apps, h)
    finally:
        for a in apps:
            a.extensions["cat_prom"].store.dispose()
    print(f"\nracing answers ({db}): races {len(winners)}, answers sent {len(winners) * RACERS}, "
          f"races with exactly one winner {sum(winners)}, sittings differing from a serial replay {mismatches}")
    assert all(winners) and mismatches == 0

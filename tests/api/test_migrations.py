"""Migration 0002 (immutable config + response log) on a database created by revision 0001.

Rows are written in 0001's shape exactly as the 0001 service wrote them: ``state`` = the engine's
``Battery.to_dict()`` with its log, ``question`` and ``result`` as JSON, and one ``responses`` row
per answer with the stored ``reply``. After ``upgrade head`` the same sittings must read the same
and an in-progress one must continue where it was.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from apihelpers import Keys, make_app

from api.registry import Registry
from api.store import SessionStore
from cat_prom.jsonable import dumps
from cat_prom.session import Battery

# 0001's shapes, frozen here (the application's tables are already 0002's).
_m = sa.MetaData()
OLD_SESSIONS = sa.Table(
    "sessions", _m, *(sa.Column(c, sa.Text) for c in ("id", "tenant", "patient_ref", "status", "battery_id",
                                                         "bank_ids", "state", "question", "result")),
    sa.Column("version", sa.Integer), sa.Column("n_responses", sa.Integer),
    *(sa.Column(c, sa.DateTime(timezone=True)) for c in ("created_at", "updated_at", "expires_at", "finished_at")))
OLD_RESPONSES = sa.Table(
    "responses", _m, sa.Column("session_id", sa.Text), sa.Column("seq", sa.Integer), sa.Column("item_id", sa.Text),
    sa.Column("value", sa.Text), sa.Column("declined", sa.Boolean), sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("reply", sa.Text))

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.timezone.utc)


def _old_sitting(conn, registry, sid, answers, *, seed):
    """A pain-core sitting after ``answers`` (values; None = declined), written as 0001 did."""
    bat = registry.batteries["pain-core"]
    battery = Battery([(registry.banks[b], bat.designs.get(b)) for b in bat.banks], seed=seed, id="pain-core")
    now, rows = T0, []
    for seq, v in enumerate(answers, start=1):
        item = battery.current_item.id
        battery.decline(item) if v is None else battery.answer(item, v)
        now = T0 + dt.timedelta(minutes=seq)
        rows.append(dict(session_id=sid, seq=seq, item_id=item, value=None if v is None else dumps(v),
                         declined=v is None, created_at=now, reply='{"stored": "reply"}'))
    finished = battery.finished
    conn.execute(OLD_SESSIONS.insert().values(
        id=sid, tenant="default", patient_ref="p-old", status="finished" if finished else "in_progress",
        battery_id="pain-core", bank_ids=dumps(list(bat.banks)), state=dumps(battery.to_dict()),
        question=None if finished else dumps({"item_id": battery.current_item.id}),
        result=dumps(battery.results()) if finished else None, version=len(answers), n_responses=len(answers),
        created_at=T0, updated_at=now, expires_at=now + dt.timedelta(days=3650), finished_at=now if finished else None))
    conn.execute(OLD_RESPONSES.insert(), rows)
    return battery


def _length(registry, seed) -> int:
    bat = registry.batteries["pain-core"]
    battery, n = Battery([(registry.banks[b], bat.designs.get(b)) for b in bat.banks], seed=seed), 0
    while not battery.finished:
        battery.answer(battery.current_item.id, 3)
        n += 1
    return n


def _check_migration(banks_dir, url, schema=None):
    registry = Registry.load(banks_dir)
    store = SessionStore(url, schema=schema)
    store.migrate("0001")
    with store.write() as conn:
        live = _old_sitting(conn, registry, "old-live", [3, None, 2], seed=7)
        done = _old_sitting(conn, registry, "old-done", [3] * _length(registry, seed=8), seed=8)
    assert done.finished and not live.finished
    store.migrate()
    with store.read() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("sessions")}
        assert "state" not in cols and "question" not in cols and "config" in cols
        config = json.loads(conn.execute(sa.text("SELECT config FROM sessions WHERE id = 'old-live'")).scalar_one())
        assert [s["log"] for s in config["sessions"]] == [[], [], [], []]
        assert conn.execute(sa.text("SELECT count(*) FROM responses")).scalar_one() == 3 + done.position  # every response row kept
    store.dispose()

    app = make_app(banks_dir, url, **({"DATABASE_SCHEMA": schema} if schema else {}))
    try:
        c, keys = app.test_client(), Keys(app)
        h = keys["patient-app"]
        g = c.get("/v1/sessions/old-live", headers=h).json
        assert g["status"] == "in_progress" and g["n_responses"] == 3 and g["next_seq"] == 4
        assert g["question"]["item_id"] == live.current_item.id  # the replayed sitting offers what 0001 would
        assert [a.get("value") for a in g["answers"]] == [3, None, 2] and g["answers"][1]["declined"] is True
        assert g["updated_at"] == (T0 + dt.timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
        # an old answer retried: its reply is rendered again from the log
        r = c.post("/v1/sessions/old-live/responses", headers=h,
                   json={"seq": 2, "item_id": g["answers"][1]["item_id"], "declined": True})
        assert r.status_code == 200 and r.json["n_responses"] == 2 and r.json["next_seq"] == 3
        # and the sitting continues
        q = g["question"]
        r = c.post("/v1/sessions/old-live/responses", headers=h, json={"seq": 4, "item_id": q["item_id"], "value": 1})
        assert r.status_code == 200 and r.json["n_responses"] == 4
        live.answer(q["item_id"], 1)
        assert r.json["question"]["item_id"] == live.current_item.id
        d = c.get("/v1/sessions/old-done", headers=h).json
        assert d["status"] == "finished" and d["results"] == json.loads(dumps(done.results()))
        res = c.get("/v1/patients/p-old/results", headers=keys["clinician"]).json
        assert [s["session_id"] for s in res["sessions"]] == ["old-done"]
    finally:
        app.extensions["cat_prom"].store.dispose()


def test_0002_migrates_a_0001_sqlite_database(tmp_path, banks_dir):
    _check_migration(banks_dir, f"sqlite:///{tmp_path / 'old.sqlite'}")


@pytest.mark.postgres
def test_0002_migrates_a_0001_postgres_database(banks_dir, pg_url, pg_schema):
    _check_migration(banks_dir, pg_url, pg_schema)

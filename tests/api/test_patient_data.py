"""Export and erasure of one patient's data (GET /v1/patients/{ref}/export, DELETE /v1/patients/{ref}),
on SQLite and PostgreSQL: the export holds every row of the patient; after erasure no table holds the
reference anywhere (every column of every table is scanned); other patients are untouched."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from apihelpers import Keys, run_session
from api.store import metadata, utcnow
from api.store.outbox import deliveries, outbox
from api.store.patient_data import PATIENT_TABLES

LEVELS = {"-2": "a", "-1": "b", "0": "c", "1": "d", "2": "e"}
GONE = "erase-me.7f3"   # distinctive, so a scan for it finds nothing else
KEEP = "keep-me.9c1"


def _patient(client, keys, ref):
    """A patient with every kind of data: sittings (one unfinished), an alert with webhook outbox rows and a
    delivery try, acceptable levels, a baseline, a personal goal with ratings, a link."""
    app_h, clin = keys["patient-app"], keys["clinician"]
    client.put(f"/v1/patients/{ref}/goals/pain-intensity", headers=app_h, json={"t_score": 40, "agreed_by": "patient"})
    first, _, _ = run_session(client, app_h, {"banks": ["pain-intensity"], "patient": ref},
                              answer=lambda q: q["options"][4]["value"])
    run_session(client, app_h, {"battery": "pain-core", "patient": ref})
    open_ = client.post("/v1/sessions", headers=app_h, json={"battery": "pain-core", "patient": ref}).json
    q = open_["question"]
    live = client.post(f"/v1/sessions/{open_['id']}/responses", headers=app_h,
                       json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]}).json
    assert live["status"] == "in_progress"
    assert client.put(f"/v1/patients/{ref}/baselines/pain-intensity", headers=clin,
                      json={"session_id": first["id"]}).status_code == 200
    goal = client.post(f"/v1/patients/{ref}/personal-goals", headers=app_h, json={"title": "walk", "levels": LEVELS})
    client.post(f"/v1/patients/{ref}/personal-goals/{goal.json['id']}/ratings", headers=clin, json={"level": 1})
    assert client.post(f"/v1/patients/{ref}/links", json={"battery": "pain-core"}, headers=app_h).status_code == 201
    alerts = client.get("/v1/alerts", query_string={"patient": ref}, headers=clin).json["alerts"]
    assert alerts, "the sitting should have raised an alert"
    return alerts, live


def _world(app, client, keys):
    client.post("/v1/webhooks", headers=keys["admin"], json={"url": "https://example.org/h"})
    gone = _patient(client, keys, GONE)
    _patient(client, keys, KEEP)
    store = app.extensions["cat_prom"].store
    with store.write() as conn:  # a delivery try of each outbox row, as the worker records it
        for oid in conn.execute(sa.select(outbox.c.id)).scalars():
            conn.execute(deliveries.insert().values(outbox_id=oid, attempt=1, worker="w1", status_code=503,
                                                    error=None, duration_ms=12.0, at=utcnow()))
    client.get(f"/v1/patients/{GONE}/results", headers=keys["clinician"])
    return gone


def _scan(store, needle: str) -> list[str]:
    """Every table (declared or not) and column where ``needle`` occurs."""
    hits = []
    with store.read() as conn:
        for name in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{name}"')):
                for col, v in row._mapping.items():
                    if v is not None and needle in str(v):
                        hits.append(f"{name}.{col}")
    return hits


def _check_export_and_erasure(app, client, keys):
    store = app.extensions["cat_prom"].store
    alerts, live = _world(app, client, keys)
    rows = store.patient_data("default", GONE)
    assert {t for t, rs in rows.items() if not rs} == set(), "the world should touch every patient table"
    keep_before = {t: len(rs) for t, rs in store.patient_data("default", KEEP).items()}

    r = client.get(f"/v1/patients/{GONE}/export", headers=keys["clinician"])
    assert r.status_code == 200 and r.headers["Cache-Control"].startswith("no-store")
    ex = r.json
    assert ex["patient"] == GONE and len(ex["sittings"]) == len(rows["sessions"]) == 4  # 3 + the link's
    assert sum(len(s["answers"]) for s in ex["sittings"]) == len(rows["responses"])
    assert sum(len(s["domain_results"]) for s in ex["sittings"]) == len(rows["domain_results"])
    assert {a["id"] for a in ex["alerts"]} == {a["id"] for a in alerts}
    assert len(ex["webhook_deliveries"]) == len(rows["outbox"]) and all(d["tries"] for d in ex["webhook_deliveries"])
    assert len(ex["personal_goals"]) == 1 and ex["personal_goals"][0]["ratings"]
    assert len(ex["acceptable_levels"]) == len(rows["acceptable_levels"]) and len(ex["baselines"]) == 1
    assert len(ex["links"]) == 1 and "token_hash" not in ex["links"][0]
    assert KEEP not in json.dumps(ex)
    assert client.get(f"/v1/patients/{GONE}/export", headers=keys["patient-app"]).status_code == 403
    assert client.get(f"/v1/patients/{GONE}/export", headers=keys["clinician@other"]).json["sittings"] == []

    # Erasure: admins only, with the reference repeated.
    assert client.delete(f"/v1/patients/{GONE}?confirm={GONE}", headers=keys["clinician"]).status_code == 403
    for q in ("", "?confirm=other"):
        r = client.delete(f"/v1/patients/{GONE}{q}", headers=keys["admin"])
        assert r.status_code == 422, q
    assert client.delete(f"/v1/patients/{GONE}?confirm={GONE}", headers=keys["admin@other"]).json["deleted"] == {
        t: 0 for t in PATIENT_TABLES}
    r = client.delete(f"/v1/patients/{GONE}?confirm={GONE}", headers=keys["admin"])
    assert r.status_code == 200, r.json
    out = r.json
    assert out["deleted"] == {t: len(rs) for t, rs in rows.items()}
    assert out["audit_rows_pseudonymised"] > 0 and out["audit_pseudonym"].startswith("erased:")

    assert _scan(store, GONE) == [], store.list_audit("default", patient=GONE) + store.list_audit("other", patient=GONE)
    assert {t: len(rs) for t, rs in store.patient_data("default", KEEP).items()} == keep_before
    # The audit log kept its rows under the pseudonym, the export and the erasure among them.
    audit = client.get("/v1/audit", query_string={"patient": out["audit_pseudonym"], "limit": 1000},
                       headers=keys["admin"]).json["entries"]
    assert len(audit) == out["audit_rows_pseudonymised"] + 1
    assert "export" in {e["action"] for e in audit}
    assert audit[-1]["action"] == "erase" and audit[-1]["status"] == 200
    # A sitting that was live (and cached by this worker) takes no more answers and is not brought back.
    q = live["question"]
    r = client.post(f"/v1/sessions/{live['id']}/responses", headers=keys["patient-app"],
                    json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]})
    assert r.status_code == 404
    assert client.get(f"/v1/sessions/{live['id']}", headers=keys["clinician"]).status_code == 404
    # Repeating erases nothing more.
    again = client.delete(f"/v1/patients/{GONE}?confirm={GONE}", headers=keys["admin"]).json
    assert set(again["deleted"].values()) == {0} and again["audit_rows_pseudonymised"] == 0
    assert _scan(store, GONE) == []


def test_every_table_with_patient_data_is_listed(app):
    """A table that holds patient references or hangs off one must be in PATIENT_TABLES (or be the audit log)."""
    referenced = {"sessions", "personal_goals", "alerts", "outbox"}
    for t in metadata.sorted_tables:
        has_ref = "patient_ref" in t.c
        child = any(fk.column.table.name in referenced for fk in t.foreign_keys)
        if has_ref or child:
            assert t.name in PATIENT_TABLES or t.name == "audit_log", t.name
    # outbox rows point at alerts by id without a foreign key
    assert PATIENT_TABLES["outbox"] == ("alert_id", "alerts")


def test_export_and_erasure_sqlite(app, client, keys):
    _check_export_and_erasure(app, client, keys)


@pytest.mark.postgres
def test_export_and_erasure_postgres(pg_app):
    _check_export_and_erasure(pg_app, pg_app.test_client(), Keys(pg_app))


def test_pseudonym_is_keyed():
    from api.patient_data import pseudonym
    a = pseudonym("k1", "t", "p")
    assert a == pseudonym("k1", "t", "p") != pseudonym("k2", "t", "p") != pseudonym("k1", "t2", "p")
    assert a.startswith("erased:") and len(a) == len("erased:") + 32
    assert pseudonym(None, "t", "p") != pseudonym(None, "t", "p")  # without a key: random, linked to nobody

"""The audit log: every read or change of a patient's data is recorded (who, what, which patient,
which route template, when, status); append-only; never answers; GET /v1/audit for admins."""
from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from apihelpers import Keys, run_session
from api.store import AuditRecord
from api.store.audit import AuditQueries, audit_log

#: Routes that touch no single patient's stored data, with the reason (every other route is audited).
NOT_AUDITED = {
    "api-docs.openapi_json", "health.healthz", "health.readyz", "banks.Banks", "banks.Bank",
    "alerts.AlertStats",            # counts per rule, no patient
    "settings.Settings", "settings.AlertSettings", "settings.BankSettings",  # tenant settings
    "webhooks.Webhooks", "webhooks.Webhook", "webhooks.Deliveries",  # delivery metadata: no patient field
    "keys.Keys", "keys.Key", "simulations.Simulations", "simulations.SimulationJob", "audit.Audit",
    "reference.page", "reference.script", "reference.root", "reference.docs_alias",
    "fhir.metadata", "fhir.questionnaires", "fhir.questionnaire",
    "fhir.next_question", "fhir.next_question_instance",  # stateless: stores and reads nothing
    "static", "take.static", "clinic.sign_in_form", "clinic.sign_in", "clinic.sign_out",
}


def _audit(client, admin, **params):
    r = client.get("/v1/audit", query_string=params, headers=admin)
    assert r.status_code == 200, r.json
    return r.json


def _rows(app) -> list[AuditRecord]:
    return app.extensions["cat_prom"].store.list_audit("default", limit=10_000)


def test_every_patient_data_route_is_declared(app):
    """A new route must either be audited or be named above with its reason."""
    for rule in app.url_map.iter_rules():
        vf = app.view_functions[rule.endpoint]
        cls = getattr(vf, "view_class", None)
        for m in rule.methods - {"HEAD", "OPTIONS"}:
            fn = getattr(cls, m.lower()) if cls else vf
            audited = getattr(fn, "_audit", None) is not None
            assert audited != (rule.endpoint in NOT_AUDITED), (m, rule.rule)


def test_a_sitting_is_recorded_without_answers(app, client, keys):
    patient, clin = keys["patient-app"], keys["clinician"]
    first, _, n = run_session(client, patient, {"battery": "pain-core", "patient": "p-audit"})
    view = client.get(f"/v1/sessions/{first['id']}", headers=clin).json
    assert view["status"] == "finished" and len(view["answers"]) == n
    assert client.get("/v1/sessions/nope", headers=clin).status_code == 404
    assert client.get("/v1/patients/p-audit/results", headers=clin).status_code == 200
    assert client.get("/v1/patients", headers=clin).status_code == 200
    rows = _rows(app)
    pid = keys._made["patient-app"]["_id"]
    cid = keys._made["clinician"]["_id"]
    got = [(r.key_id, r.role, r.action, r.patient_ref, r.method, r.route, r.status) for r in rows]
    assert got[0] == (pid, "patient-app", "create", "p-audit", "POST", "/v1/sessions", 201)
    answers = [g for g in got[1:1 + n]]
    assert answers == [(pid, "patient-app", "update", "p-audit", "POST",
                        "/v1/sessions/<string:session_id>/responses", 200)] * n
    assert got[1 + n:] == [
        (cid, "clinician", "read", "p-audit", "GET", "/v1/sessions/<string:session_id>", 200),
        (cid, "clinician", "read", None, "GET", "/v1/sessions/<string:session_id>", 404),
        (cid, "clinician", "read", "p-audit", "GET", "/v1/patients/<string:patient_ref>/results", 200),
        (cid, "clinician", "read", "p-audit", "GET", "/v1/patients", 200),  # the triage list shows p-audit
    ]
    assert all(r.tenant == "default" and r.request_id and r.at for r in rows)
    # Never answers, item ids, scores or session ids: the table holds only the declared columns.
    with app.extensions["cat_prom"].store.read() as conn:
        dump = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(audit_log))])
    for a in view["answers"]:
        assert a["item_id"] not in dump
    assert first["id"] not in dump


def test_query_filters_pagination_and_access(app, client, keys):
    admin, clin = keys["admin"], keys["clinician"]
    run_session(client, keys["patient-app"], {"battery": "pain-core", "patient": "p-1"})
    run_session(client, keys["patient-app"], {"battery": "pain-core", "patient": "p-2"})
    client.get("/v1/patients/p-1/goals", headers=clin)
    everything = _audit(client, admin, limit=1000)["entries"]
    assert {e["patient"] for e in everything} == {"p-1", "p-2"}
    p1 = _audit(client, admin, patient="p-1", limit=1000)["entries"]
    assert p1 and all(e["patient"] == "p-1" for e in p1)
    reads = _audit(client, admin, action="read", key=keys._made["clinician"]["_id"])["entries"]
    assert [(e["route"], e["patient"]) for e in reads] == [("/v1/patients/<string:patient_ref>/goals", "p-1")]
    # Pagination by `after`: pages join to the whole log, no row twice.
    seen, page = [], _audit(client, admin, limit=3)
    while True:
        seen += [e["id"] for e in page["entries"]]
        if page["next_after"] is None:
            assert page["next"] is None
            break
        assert re.search(r"[?&]after=\d+", page["next"]) and "limit=3" in page["next"]
        page = _audit(client, admin, limit=3, after=page["next_after"])
    assert seen == [e["id"] for e in everything]
    # Time window: everything is before `until`=far future and nothing since then.
    assert len(_audit(client, admin, since="2026-01-01T00:00:00Z", until="2999-01-01T00:00:00Z",
                      limit=1000)["entries"]) == len(everything)
    assert _audit(client, admin, since="2999-01-01T00:00:00Z")["entries"] == []
    # Admins only; another tenant's admin sees none of it; bad filters are 422.
    for role in ("clinician", "patient-app", "researcher"):
        assert client.get("/v1/audit", headers=keys[role]).status_code == 403
    assert _audit(client, keys["admin@other"])["entries"] == []
    for bad in ({"action": "peek"}, {"patient": "a b"}, {"limit": 0}, {"since": "2999-01-01", "until": "2000-01-01"},
                {"color": "red"}):
        r = client.get("/v1/audit", query_string=bad, headers=admin)
        assert r.status_code == 422, bad


def test_link_tokens_and_web_sessions_are_named(app, client, keys):
    clin = keys["clinician"]
    r = client.post("/v1/patients/p-link/links", json={"battery": "pain-core"}, headers=keys["patient-app"])
    link = r.json
    path = "/take/" + link["url"].rsplit("/take/", 1)[1]
    assert client.get(path).status_code == 200
    page = client.get("/clinic/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/clinic/sign-in", data={"csrf_token": token, "key": clin["Authorization"][7:]})
    assert client.get("/v1/patients/p-link/report?format=json").status_code == 200
    rows = _rows(app)
    take = [r for r in rows if r.route == "/take/<token>"]
    assert [(r.role, r.link_id, r.key_id, r.patient_ref, r.action) for r in take] == [
        ("link", link["id"], None, "p-link", "read")]
    report = [r for r in rows if r.route.endswith("/report")]
    assert len(report) == 1 and report[0].key_id == keys._made["clinician"]["_id"]
    assert report[0].web_session_id and report[0].web_session_id.startswith("ws_")
    # No token in the log: the route is the template.
    assert all(link["url"].rsplit("/", 1)[1] not in r.route for r in rows)


def test_the_store_offers_no_update_or_delete_of_rows():
    public = {n for n in vars(AuditQueries) if not n.startswith("_")}
    assert public == {"append_audit", "list_audit", "pseudonymise_audit"}


@pytest.mark.postgres
def test_audit_on_postgres(pg_app):
    keys, client = Keys(pg_app), pg_app.test_client()
    first, _, n = run_session(client, keys["patient-app"], {"battery": "pain-core", "patient": "p-pg"})
    client.get(f"/v1/sessions/{first['id']}", headers=keys["clinician"])
    entries = _audit(client, keys["admin"], patient="p-pg", limit=1000)["entries"]
    assert [e["action"] for e in entries] == ["create"] + ["update"] * n + ["read"]
    assert entries[-1]["role"] == "clinician" and entries[-1]["status"] == 200


def test_the_documented_audit_reply_has_the_real_shape(app, client, keys):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    block = text[text.index('$API/v1/audit?'):]
    doc = json.loads(block[block.index("```json") + 7:block.index("```", block.index("```json") + 7)])
    run_session(client, keys["patient-app"], {"battery": "pain-core", "patient": "p-001"})
    real = _audit(client, keys["admin"], limit=1)
    assert set(doc) == set(real) and set(doc["entries"][0]) == set(real["entries"][0])


def test_audit_cursor_beyond_a_64_bit_id_is_a_422(client, keys):
    """Found by schemathesis: `after` larger than any row id overflowed the driver (500)."""
    r = client.get("/v1/audit?after=1187790217793762868716204195840", headers=keys["admin"])
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert client.get(f"/v1/audit?after={2**63 - 1}", headers=keys["admin"]).status_code == 200


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_answers_audit_row_commits_with_the_answer_or_not_at_all(db, request):
    """The answer route writes its audit row inside the answer's own transaction (on PostgreSQL inside
    its one statement): exactly one row per stored answer, and none when the store refuses the
    answer because another request moved the sitting on first (the route then retries, and only
    the stored attempt is logged)."""
    import datetime as dt

    from api.store.records import Advance, ResponseRecord
    app = request.getfixturevalue("app" if db == "sqlite" else "pg_app")
    client, keys = app.test_client(), Keys(app)
    h = keys["patient-app"]
    v = client.post("/v1/sessions", json={"banks": ["pain-intensity"], "patient": "p-tx"}, headers=h).json
    store = app.extensions["cat_prom"].store
    rec = store.get_session(v["id"], "default")
    now = dt.datetime.now(dt.timezone.utc)
    row = {"at": now, "tenant": "default", "key_id": "k", "role": "patient-app", "web_session_id": None,
           "link_id": None, "action": "update", "patient_ref": "p-tx", "method": "POST",
           "route": "/v1/sessions/<string:session_id>/responses", "status": 200, "request_id": "r-stale"}
    stale = Advance(version=rec.version + 1, n_responses=1, status="in_progress", updated_at=now,
                    expires_at=now + dt.timedelta(days=1), finished_at=None, result=None,
                    response=ResponseRecord(1, v["question"]["item_id"], 1, False, now))
    assert store.advance(rec.id, rec.version + 5, stale, audit=[row]) is False  # wrong version: nothing written
    assert "r-stale" not in {r.request_id for r in _rows(app)}
    assert store.get_response(rec.id, 1) is None
    q = v["question"]
    r = client.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                    json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]})
    assert r.status_code == 200
    answered = [x for x in _rows(app) if x.route.endswith("/responses")]
    assert [(x.patient_ref, x.status, x.action) for x in answered] == [("p-tx", 200, "update")]
    # an answer refused (409) is logged by the after-request hook, with its status (a refused request
    # returned no patient data, so, as before, its row names none)
    again = client.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                        json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][1]["value"]})
    assert again.status_code == 409
    answered = [x for x in _rows(app) if x.route.endswith("/responses")]
    assert [(x.patient_ref, x.status) for x in answered] == [("p-tx", 200), (None, 409)]


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_new_sittings_audit_row_commits_with_it_or_not_at_all(db, request):
    """Starting a sitting writes its audit row with the sitting (on PostgreSQL in one statement): a
    sitting that cannot be stored (here: its id exists) leaves no audit row either."""
    import datetime as dt

    import sqlalchemy as sa

    from api.store.records import SessionRecord
    app = request.getfixturevalue("app" if db == "sqlite" else "pg_app")
    store = app.extensions["cat_prom"].store
    now = dt.datetime.now(dt.timezone.utc)
    rec = SessionRecord(id="s-audit-tx", tenant="default", patient_ref="p-new", status="in_progress",
                        battery_id=None, bank_ids=["pain-intensity"], version=0, n_responses=0, created_at=now,
                        updated_at=now, expires_at=now + dt.timedelta(days=1), finished_at=None, result=None)

    def row(rid):
        return {"at": now, "tenant": "default", "key_id": "k", "role": "patient-app", "web_session_id": None,
                "link_id": None, "action": "create", "patient_ref": "p-new", "method": "POST",
                "route": "/v1/sessions", "status": 201, "request_id": rid}

    store.insert_session(rec, {"sessions": []}, audit=[row("r-first")])
    with pytest.raises(sa.exc.IntegrityError):
        store.insert_session(rec, {"sessions": []}, audit=[row("r-duplicate")])
    ids = [r.request_id for r in _rows(app)]
    assert ids.count("r-first") == 1 and "r-duplicate" not in ids
    assert store.get_session("s-audit-tx", "default").patient_ref == "p-new"

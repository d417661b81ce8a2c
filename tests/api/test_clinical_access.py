"""Every clinical route in the role × tenant matrix: who may call it, and that another tenant's
clinician sees nothing of this tenant's patients, alerts, goals or webhooks."""
from __future__ import annotations

import pytest

from apihelpers import run_session

ROLES = ("patient-app", "clinician", "researcher", "admin")
LEVELS = {"-2": "a", "-1": "b", "0": "c", "1": "d", "2": "e"}


def _world(client, keys):
    """One patient with a finished sitting, a goal, a personal goal, an alert and a webhook in tenant 'default'."""
    app_h = keys["patient-app"]
    client.put("/v1/patients/p-1/goals/pain-intensity", headers=app_h, json={"t_score": 40, "agreed_by": "patient"})
    first, view, _ = run_session(client, app_h, {"banks": ["pain-intensity"], "patient": "p-1"},
                                 answer=lambda q: q["options"][4]["value"])
    alerts = client.get("/v1/alerts", headers=keys["clinician"]).json["alerts"]
    assert alerts, "the sitting should have raised an alert"
    goal = client.post("/v1/patients/p-1/personal-goals", headers=app_h, json={"title": "t", "levels": LEVELS}).json
    hook = client.post("/v1/webhooks", headers=keys["admin"], json={"url": "https://example.org/h"}).json
    return {"sid": first["id"], "alert": alerts[0]["id"], "goal": goal["id"], "hook": hook["id"]}


def _routes(w):
    """(method, path, body or query, roles allowed)."""
    goal = f"/v1/patients/p-1/personal-goals/{w['goal']}"
    return [
        ("GET", "/v1/patients", None, {"clinician"}),
        ("GET", "/v1/patients/p-1/results", None, {"clinician"}),
        ("GET", "/v1/patients/p-1/goals", None, {"patient-app", "clinician"}),
        ("PUT", "/v1/patients/p-1/goals/pain-intensity", {"t_score": 45, "agreed_by": "both"},
         {"patient-app", "clinician"}),
        ("PUT", "/v1/patients/p-1/baselines/pain-intensity", {"session_id": w["sid"]}, {"clinician"}),
        ("GET", "/v1/patients/p-1/personal-goals", None, {"patient-app", "clinician"}),
        ("POST", "/v1/patients/p-1/personal-goals", {"title": "x", "levels": LEVELS}, {"patient-app", "clinician"}),
        ("PATCH", goal, {"title": "y"}, {"patient-app", "clinician"}),
        ("POST", goal + "/ratings", {"level": 1}, {"patient-app", "clinician"}),
        ("GET", "/v1/alerts", None, {"clinician"}),
        ("GET", "/v1/alerts/stats", None, {"clinician", "admin"}),
        ("GET", f"/v1/alerts/{w['alert']}", None, {"clinician"}),
        ("POST", f"/v1/alerts/{w['alert']}/acknowledge", {"note": "seen"}, {"clinician"}),
        ("GET", "/v1/settings", None, {"admin"}),
        ("PUT", "/v1/settings/alerts", {"enabled_rules": ["severe_band"]}, {"admin"}),
        ("PUT", "/v1/settings/banks/pain-intensity", {"mid_t": 4}, {"admin"}),
        ("GET", "/v1/webhooks", None, {"admin"}),
        ("POST", "/v1/webhooks", {"url": "https://example.org/x"}, {"admin"}),
        ("PATCH", f"/v1/webhooks/{w['hook']}", {"active": False}, {"admin"}),
        ("GET", f"/v1/webhooks/{w['hook']}/deliveries", None, {"admin"}),
        ("DELETE", goal, None, {"patient-app", "clinician"}),
    ]


def _call(client, method, path, body, headers):
    if method in ("GET", "DELETE"):
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, headers=headers, json=body)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, keys, role):
    w = _world(client, keys)
    for method, path, body, allowed in _routes(w):
        r = _call(client, method, path, body, keys[role])
        if role in allowed:
            assert r.status_code < 400, (role, method, path, r.status_code, r.json)
        else:
            assert r.status_code == 403 and r.json["type"].endswith(":forbidden"), (role, method, path)
        assert _call(client, method, path, body, {}).status_code == 401


def test_patient_app_sets_goals_but_never_reads_alerts(client, keys):
    w = _world(client, keys)
    h = keys["patient-app"]
    for path in ("/v1/alerts", f"/v1/alerts/{w['alert']}", "/v1/patients", "/v1/patients/p-1/results"):
        assert client.get(path, headers=h).status_code == 403


def test_another_tenant_sees_nothing(client, keys):
    w = _world(client, keys)
    other = {r: keys[f"{r}@clinic-b"] for r in ROLES}
    c = other["clinician"]
    assert client.get("/v1/patients", headers=c).json["patients"] == []
    assert client.get("/v1/patients/p-1/results", headers=c).json["sessions"] == []
    assert client.get("/v1/alerts", headers=c).json["alerts"] == []
    assert client.get("/v1/alerts/stats", headers=c).json["finished_sittings"] == 0
    assert client.get(f"/v1/alerts/{w['alert']}", headers=c).status_code == 404
    assert client.post(f"/v1/alerts/{w['alert']}/acknowledge", headers=c, json={"note": "x"}).status_code == 404
    g = client.get("/v1/patients/p-1/goals", headers=c).json
    assert g["current"] == [] and g["history"] == []
    assert client.get("/v1/patients/p-1/personal-goals", headers=c).json["goals"] == []
    goal = f"/v1/patients/p-1/personal-goals/{w['goal']}"
    assert client.patch(goal, headers=c, json={"title": "z"}).status_code == 404
    assert client.post(goal + "/ratings", headers=c, json={"level": 0}).status_code == 404
    assert client.delete(goal, headers=c).status_code == 404
    assert client.put("/v1/patients/p-1/baselines/pain-intensity", headers=c,
                      json={"session_id": w["sid"]}).status_code == 404
    a = other["admin"]
    assert client.get("/v1/webhooks", headers=a).json == []
    assert client.patch(f"/v1/webhooks/{w['hook']}", headers=a, json={"active": False}).status_code == 404
    assert client.get(f"/v1/webhooks/{w['hook']}/deliveries", headers=a).status_code == 404
    assert client.get("/v1/settings", headers=a).json["alerts"]["updated_at"] is None
    # and this tenant's alert is untouched
    assert client.get(f"/v1/alerts/{w['alert']}", headers=keys["clinician"]).json["status"] == "open"


def test_alert_filters_ack_idempotency_and_unknown_parameters(client, keys):
    w = _world(client, keys)
    clin = keys["clinician"]
    all_alerts = client.get("/v1/alerts", headers=clin).json["alerts"]
    rules = {a["rule"] for a in all_alerts}
    assert rules <= {"above_acceptable", "severe_band"}
    for rule in rules:
        got = client.get("/v1/alerts", headers=clin, query_string={"rule": rule}).json["alerts"]
        assert {a["rule"] for a in got} == {rule}
    assert client.get("/v1/alerts", headers=clin, query_string={"domain": "sleep-disturbance"}).json["alerts"] == []
    assert len(client.get("/v1/alerts", headers=clin, query_string={"domain": "pain-intensity", "patient": "p-1",
                                                                    "status": "open"}).json["alerts"]) == len(all_alerts)
    assert client.get("/v1/alerts", headers=clin, query_string={"since": "2999-01-01T00:00:00Z"}).json["alerts"] == []
    for bad in ({"status": "closed"}, {"rule": "nope"}, {"colour": "red"}, {"since": "yesterday"}, {"limit": 0}):
        r = client.get("/v1/alerts", headers=clin, query_string=bad)
        assert r.status_code == 422 and r.json["type"].endswith("validation-error"), bad
    assert client.get("/v1/patients", headers=clin, query_string={"sort": "name"}).status_code == 422
    url = f"/v1/alerts/{w['alert']}/acknowledge"
    first = client.post(url, headers=clin, json={"note": "seen"})
    again = client.post(url, headers=clin, json={"note": "seen"})
    assert first.status_code == again.status_code == 200 and first.json == again.json
    assert client.post(url, headers=clin, json={"note": "other"}).status_code == 409
    assert client.post(url, headers=clin, json={}).status_code == 422
    assert client.get("/v1/alerts", headers=clin, query_string={"status": "acknowledged"}).json["alerts"][0]["id"] \
        == w["alert"]
    assert client.get("/v1/alerts/al_nope", headers=clin).status_code == 404


def test_settings_and_webhook_admin(client, keys):
    admin = keys["admin"]
    s = client.get("/v1/settings", headers=admin).json
    assert s["alerts"]["certainty"] == 0.8 and s["alerts"]["gas_rho"] == 0.3
    assert "abandoned_sittings" not in s["alerts"]["enabled_rules"]
    assert {b["bank_id"]: b["mid_t"] for b in s["banks"]}["pain-intensity"] == 5.0
    r = client.put("/v1/settings/banks/pain-intensity", headers=admin, json={"mid_t": 4, "default_acceptable_t": 60})
    assert r.json == {**r.json, "mid_t": 4.0, "mid_source": "tenant", "default_acceptable_t": 60.0}
    assert client.put("/v1/settings/banks/nope", headers=admin, json={"mid_t": 4}).status_code == 404
    assert client.put("/v1/settings/alerts", headers=admin, json={"enabled_rules": ["x"]}).status_code == 422
    assert client.put("/v1/settings/alerts", headers=admin,
                      json={"enabled_rules": [], "certainty": 0.3}).status_code == 422
    created = client.post("/v1/webhooks", headers=admin, json={"url": "https://example.org/h", "description": "ward"})
    assert created.status_code == 201 and created.json["secret"].startswith("whsec_")
    listed = client.get("/v1/webhooks", headers=admin).json
    assert [h["id"] for h in listed] == [created.json["id"]] and "secret" not in listed[0]
    assert client.post("/v1/webhooks", headers=admin, json={"url": "ftp://example.org"}).status_code == 422
    r = client.patch(f"/v1/webhooks/{created.json['id']}", headers=admin, json={"active": False})
    assert r.json["active"] is False
    assert client.get(f"/v1/webhooks/{created.json['id']}/deliveries", headers=admin).json == []


def test_abandoned_sittings_rule(client, keys):
    admin, app_h, clin = keys["admin"], keys["patient-app"], keys["clinician"]
    client.put("/v1/settings/alerts", headers=admin, json={"enabled_rules": ["abandoned_sittings"], "abandoned_n": 2})
    for i in range(3):
        sid = client.post("/v1/sessions", headers=app_h, json={"banks": ["pain-intensity"], "patient": "p-ab"}).json["id"]
        assert client.delete(f"/v1/sessions/{sid}", headers=app_h).status_code == 204
        alerts = client.get("/v1/alerts", headers=clin).json["alerts"]
        assert len(alerts) == (0 if i == 0 else 1)  # fires at the 2nd; the 3rd updates it
    a = alerts[0]
    assert a["rule"] == "abandoned_sittings" and a["bank_id"] == "*" and a["details"]["consecutive_abandoned"] == 3


def test_expired_sittings_count_as_abandoned(client, keys, monkeypatch):
    import datetime as dt
    admin, app_h, clin = keys["admin"], keys["patient-app"], keys["clinician"]
    client.put("/v1/settings/alerts", headers=admin, json={"enabled_rules": ["abandoned_sittings"], "abandoned_n": 2})
    client.post("/v1/sessions", headers=app_h, json={"banks": ["pain-intensity"], "patient": "p-ex"})  # left open
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=8)  # past the 7-day expiry
    monkeypatch.setattr("api.service.utcnow", lambda: later)
    sid = client.post("/v1/sessions", headers=app_h, json={"banks": ["pain-intensity"], "patient": "p-ex"}).json["id"]
    assert client.delete(f"/v1/sessions/{sid}", headers=app_h).status_code == 204
    alerts = client.get("/v1/alerts", headers=clin).json["alerts"]
    assert [(a["rule"], a["details"]["consecutive_abandoned"]) for a in alerts] == [("abandoned_sittings", 2)]


@pytest.mark.postgres
def test_two_sittings_finishing_at_once_open_one_alert_on_postgres(pg_app):
    """Both sittings of one patient finish in the same instant and both exceed the goal: the patient
    lock serialises the two evaluations, so one alert is opened and the other sitting updates it
    (without it, the unique open-alert index would fail one of the answers)."""
    import threading

    from apihelpers import Keys
    keys = Keys(pg_app)
    app_h, clin = keys["patient-app"], keys["clinician"]
    setup = pg_app.test_client()
    setup.put("/v1/settings/alerts", headers=keys["admin"], json={"enabled_rules": ["above_acceptable"]})
    for k in range(4):
        patient = f"p-race-{k}"
        setup.put(f"/v1/patients/{patient}/goals/pain-intensity", headers=app_h,
                  json={"t_score": 30, "agreed_by": "both"})
        views = [setup.post("/v1/sessions", headers=app_h, json={
            "banks": ["pain-intensity"], "patient": patient, "design": {"min_items": 1, "max_items": 1}}).json for _ in range(2)]
        barrier = threading.Barrier(2)
        codes = []

        def answer(v):
            c = pg_app.test_client()
            q = v["question"]
            barrier.wait()
            r = c.post(f"/v1/sessions/{v['id']}/responses", headers=app_h,
                       json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][4]["value"]})
            codes.append((r.status_code, r.json["status"]))

        ts = [threading.Thread(target=answer, args=(v,)) for v in views]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert codes == [(200, "finished")] * 2
        alerts = setup.get("/v1/alerts", headers=clin, query_string={"patient": patient}).json["alerts"]
        assert len(alerts) == 1 and alerts[0]["status"] == "open"
        assert {alerts[0]["session_id"], alerts[0]["last_session_id"]} == {v["id"] for v in views}


def test_clinical_replies_match_the_openapi_document(client, keys):
    """The bodies of the clinical routes validate against their component schemas (nullable fields
    included): what the document says is what is sent."""
    import jsonschema

    from test_openapi_conformance import _json_schema
    w = _world(client, keys)
    # a not-scored sitting too: nulls where scores would be
    v = client.post("/v1/sessions", headers=keys["patient-app"], json={"banks": ["sleep-disturbance"],
                                                                        "patient": "p-1"}).json
    while v["status"] == "in_progress":
        q = v["question"]
        v = client.post(f"/v1/sessions/{v['id']}/responses", headers=keys["patient-app"],
                        json={"seq": q["seq"], "item_id": q["item_id"], "declined": True}).json
    client.post(f"/v1/patients/p-1/personal-goals/{w['goal']}/ratings", headers=keys["clinician"], json={"level": 1})
    spec = client.get("/v1/openapi.json").json
    clin, admin = keys["clinician"], keys["admin"]
    checks = [
        ("/v1/patients", clin, "Triage"),
        ("/v1/patients/p-1/results", clin, "PatientResults"),
        ("/v1/patients/p-1/goals", clin, "Goals"),
        ("/v1/patients/p-1/personal-goals", clin, "PersonalGoals"),
        ("/v1/alerts", clin, "AlertList"),
        ("/v1/alerts/stats", clin, "AlertStats"),
        (f"/v1/alerts/{w['alert']}", clin, "Alert"),
        ("/v1/settings", admin, "Settings"),
    ]
    for path, h, name in checks:
        r = client.get(path, headers=h)
        assert r.status_code == 200, path
        jsonschema.validate(r.json, _json_schema(spec, name))
    results = client.get("/v1/patients/p-1/results", headers=clin).json["sessions"]
    assert any(d["status"] == "not_scored" for s in results for d in s["results"])

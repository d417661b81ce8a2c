"""The clinical layer end to end over HTTP: a patient with a goal answers weekly sittings (the
service's clock is moved on a week at a time), worsens, the alert fires once with its certainty,
is acknowledged, stays quiet while nothing changes, and re-opens only after a further worsening
of at least the MID. Also: not-scored domains, the goal as a classification threshold, GAS."""
from __future__ import annotations

import datetime as dt
import json
import math

import pytest
import sqlalchemy as sa

from api.store import outbox as ob
from apihelpers import run_session

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock(app, monkeypatch):
    c = Clock(T0)
    monkeypatch.setattr("api.service.utcnow", c)
    app.extensions["cat_prom"].clinical.clock = c
    return c


def _sitting(client, h, patient, category, bank="pain-intensity"):
    """One sitting answering every question with the option at index ``category``."""
    _, view, _ = run_session(client, h, {"banks": [bank], "patient": patient},
                             answer=lambda q: q["options"][category]["value"])
    assert view["status"] == "finished"
    return view


def test_weekly_sittings_alert_once_acknowledge_reopen_on_mid_worsening(client, keys, clock):
    _weekly_scenario(client, keys, clock)


@pytest.mark.postgres
def test_weekly_scenario_on_postgres(pg_app, monkeypatch):
    from apihelpers import Keys
    c = Clock(T0)
    monkeypatch.setattr("api.service.utcnow", c)
    pg_app.extensions["cat_prom"].clinical.clock = c
    _weekly_scenario(pg_app.test_client(), Keys(pg_app), c)


def _weekly_scenario(client, keys, clock):
    app_h, clin, admin = keys["patient-app"], keys["clinician"], keys["admin"]
    r = client.put("/v1/settings/alerts", headers=admin, json={"enabled_rules": ["above_acceptable"]})
    assert r.status_code == 200 and r.json["certainty"] == 0.8
    r = client.post("/v1/webhooks", headers=admin, json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201 and r.json["secret"].startswith("whsec_")
    r = client.put("/v1/patients/p-7/goals/pain-intensity", headers=app_h,
                   json={"t_score": 50, "agreed_by": "both", "note": "agreed at the first visit"})
    assert r.status_code == 200 and r.json["t_score"] == 50 and r.json["set_role"] == "patient-app"

    ts = []
    for week, category in enumerate([1, 1, 3, 3, 4]):  # two good weeks, worse, the same, worse again
        clock.t = T0 + dt.timedelta(weeks=week)
        view = _sitting(client, app_h, "p-7", category)
        ts.append(view["results"][0]["t_score"])
        alerts = client.get("/v1/alerts", headers=clin, query_string={"patient": "p-7"}).json["alerts"]
        if week < 2:
            assert alerts == []  # below the goal: quiet
        elif week == 2:
            assert len(alerts) == 1
            a = alerts[0]
            assert a["rule"] == "above_acceptable" and a["status"] == "open" and a["threshold_t"] == 50
            # its certainty is the posterior probability that the true T is above 50: near the normal
            # approximation Φ((T - 50)/SE) of the same score (independent check, loose: the posterior is not normal)
            approx = 0.5 * (1 + math.erf((a["t_score"] - 50) / (a["t_se"] * math.sqrt(2))))
            assert a["certainty"] >= 0.8 and abs(a["certainty"] - approx) < 0.05
            assert a["details"]["certainty_method"] == "posterior"
            assert a["opened_at"] == "2026-03-16T09:00:00Z"
            first = a["id"]
            clock.t += dt.timedelta(hours=3)
            r = client.post(f"/v1/alerts/{first}/acknowledge", headers=clin, json={"note": "phoned; plan changed"})
            assert r.status_code == 200 and r.json["status"] == "acknowledged"
            assert r.json["acknowledged_by"] == keys._made["clinician"]["_id"]  # who acknowledged: the key
        elif week == 3:
            assert [(x["id"], x["status"]) for x in alerts] == [(first, "acknowledged")]  # unchanged: no new alert
            assert alerts[0]["last_session_id"] == view["id"]  # the acknowledged alert was updated
        else:
            assert ts[4] - ts[3] >= 5  # a further MID worsening ...
            assert len(alerts) == 2    # ... re-opens: a new alert that points at the acknowledged one
            assert alerts[0]["status"] == "open" and alerts[0]["reopens"] == first
    assert ts[2] > 50 > ts[1]

    # every alert opened was queued once for the webhook, in the answer's transaction
    store = client.application.extensions["cat_prom"].store
    with store.read() as conn:
        rows = conn.execute(sa.select(ob.outbox.c.alert_id, ob.outbox.c.payload)).all()
    assert sorted(r.alert_id for r in rows) == sorted(a["id"] for a in alerts)
    payload = json.loads(rows[0].payload)
    assert payload["patient"] == "p-7" and "items" not in payload and "answers" not in payload

    # triage: the patient with an open alert comes first; stats: 2 alerts in 5 sittings
    client.post("/v1/sessions", headers=app_h, json={"banks": ["pain-intensity"], "patient": "p-quiet"})
    _sitting(client, app_h, "p-quiet", 1)
    tri = client.get("/v1/patients", headers=clin).json
    assert [p["patient"] for p in tri["patients"]] == ["p-7", "p-quiet"] and tri["total"] == 2
    assert tri["patients"][0]["open_alerts"] == 1
    assert tri["patients"][0]["domains"][0]["change"]["direction"] == "worse"
    st = client.get("/v1/alerts/stats", headers=clin,
                    query_string={"since": "2026-03-01T00:00:00Z", "until": "2026-04-06T00:00:00Z"}).json
    assert st["finished_sittings"] == 6 and st["alerts"] == 2 and st["per_100_sittings"] == pytest.approx(33.33)

    # results over time: change against previous and baseline, the goal, the alerts per domain
    res = client.get("/v1/patients/p-7/results", headers=clin).json["sessions"]
    assert len(res) == 5
    d3 = res[2]["results"][0]
    assert d3["goal"] == {"t_score": 50.0, "source": "patient"}
    assert d3["change"]["previous"]["delta_t"] == pytest.approx(ts[2] - ts[1])
    assert d3["change"]["baseline"]["from_session_id"] == res[0]["session_id"]
    assert d3["change"]["previous"]["reliable"] is True and d3["change"]["previous"]["direction"] == "worse"
    assert [a["rule"] for a in d3["alerts"]] == ["above_acceptable"]
    assert res[0]["results"][0]["change"] == {"previous": None, "baseline": None, "mid_t": 5.0}
    window = client.get("/v1/patients/p-7/results", headers=clin,
                        query_string={"from": "2026-03-09T00:00:00Z", "to": "2026-03-17T00:00:00Z"}).json
    assert len(window["sessions"]) == 2
    assert client.get("/v1/patients/p-7/results", headers=clin, query_string={"since": "x"}).status_code == 422


def test_all_declined_domain_is_not_scored_and_never_alerts(client, keys, clock):
    app_h, clin, admin = keys["patient-app"], keys["clinician"], keys["admin"]
    client.put("/v1/settings/banks/pain-intensity", headers=admin, json={"default_acceptable_t": 20})
    r = client.post("/v1/sessions", headers=app_h, json={"banks": ["pain-intensity"], "patient": "p-d"})
    view = r.json
    while view["status"] == "in_progress":
        q = view["question"]
        view = client.post(f"/v1/sessions/{view['id']}/responses", headers=app_h,
                           json={"seq": q["seq"], "item_id": q["item_id"], "declined": True}).json
    d = view["results"][0]
    assert d["status"] == "not_scored" and d["status_reason"] == "all_declined"
    assert d["t_score"] is None and d["band"] is None
    assert client.get("/v1/alerts", headers=clin).json["alerts"] == []  # goal T 20 would be exceeded by any score
    res = client.get("/v1/patients/p-d/results", headers=clin).json["sessions"][0]["results"][0]
    assert res["status"] == "not_scored" and res["change"] is None
    tri = client.get("/v1/patients", headers=clin).json["patients"]
    assert tri[0]["patient"] == "p-d" and tri[0]["domains"] == []


def test_sitting_finished_at_creation_is_recorded_not_scored(client, keys, clock):
    """Every item excluded: the sitting finishes at creation, not scored, and still counts as a sitting."""
    bank = client.get("/v1/banks/pain-intensity", headers=keys["clinician"]).json
    ids = [i["id"] for i in bank["items"]]
    r = client.post("/v1/sessions", headers=keys["patient-app"],
                    json={"banks": ["pain-intensity"], "patient": "p-x", "exclude_items": ids})
    assert r.status_code == 201 and r.json["status"] == "finished"
    assert r.json["results"][0]["status_reason"] == "no_eligible_items"
    clock.t += dt.timedelta(minutes=1)  # the period of /stats ends now, exclusive
    st = client.get("/v1/alerts/stats", headers=keys["clinician"]).json
    assert st["finished_sittings"] == 1 and st["alerts"] == 0
    res = client.get("/v1/patients/p-x/results", headers=keys["clinician"]).json["sessions"][0]["results"][0]
    assert res["status"] == "not_scored" and res["t_score"] is None and res["change"] is None


def test_goal_as_classification_threshold(client, keys, clock):
    app_h = keys["patient-app"]
    body = {"banks": ["pain-intensity"], "patient": "p-g",
            "design": {"classification": {"threshold_t": "goal", "confidence": 0.9}}}
    r = client.post("/v1/sessions", headers=app_h, json=body)
    assert r.status_code == 422 and r.json["type"].endswith("no-acceptable-level")
    client.put("/v1/settings/banks/pain-intensity", headers=keys["admin"], json={"default_acceptable_t": 58})
    r = client.post("/v1/sessions", headers=app_h, json=body)  # the clinic default applies
    assert r.status_code == 201
    client.put("/v1/patients/p-g/goals/pain-intensity", headers=app_h, json={"band": "mild", "agreed_by": "patient"})
    first, view, n = run_session(client, app_h, body, answer=lambda q: q["options"][4]["value"])
    store = client.application.extensions["cat_prom"].store
    config, _ = store.get_replay(first["id"], 0)
    assert config["sessions"][0]["design"]["classification"] == {"threshold_t": 60.0, "confidence": 0.9}
    assert view["results"][0]["stop_reason"] == "classification"


def test_acceptable_levels_history_bands_and_roles(client, keys, clock):
    app_h, clin = keys["patient-app"], keys["clinician"]
    r = client.put("/v1/patients/p-1/goals/pain-intensity", headers=app_h, json={"band": "moderate",
                                                                                 "agreed_by": "clinician"})
    assert r.status_code == 403  # a patient app speaks for the patient
    r = client.put("/v1/patients/p-1/goals/pain-intensity", headers=app_h, json={"band": "moderate",
                                                                                 "agreed_by": "patient"})
    assert r.json["t_score"] == 70.0 and r.json["band"] == "moderate"  # worst edge of the band
    r = client.put("/v1/patients/p-1/goals/physical-function", headers=clin, json={"band": "mild", "agreed_by": "both"})
    assert r.json["t_score"] == 55.0  # higher is better: the lower edge (the test banks' mild band is [55, 60))
    assert client.put("/v1/patients/p-1/goals/pain-intensity", headers=clin,
                      json={"band": "severe", "agreed_by": "both"}).status_code == 422  # open-ended
    assert client.put("/v1/patients/p-1/goals/pain-intensity", headers=clin,
                      json={"band": "awful", "agreed_by": "both"}).status_code == 422
    assert client.put("/v1/patients/p-1/goals/pain-intensity", headers=clin,
                      json={"t_score": 60, "band": "mild", "agreed_by": "both"}).status_code == 422
    clock.t += dt.timedelta(days=1)
    client.put("/v1/patients/p-1/goals/pain-intensity", headers=clin, json={"t_score": 62.5, "agreed_by": "both",
                                                                            "note": "review"})
    g = client.get("/v1/patients/p-1/goals", headers=app_h).json
    cur = {c["bank_id"]: c for c in g["current"]}
    assert cur["pain-intensity"]["t_score"] == 62.5 and cur["pain-intensity"]["set_role"] == "clinician"
    assert [h["t_score"] for h in g["history"]] == [62.5, 55.0, 70.0]  # never overwritten, newest first


def test_personal_goals_and_gas_t_scores(client, keys, clock):
    app_h, clin = keys["patient-app"], keys["clinician"]
    levels = {"-2": "cannot", "-1": "a little", "0": "expected", "1": "more", "2": "much more"}
    g1 = client.post("/v1/patients/p-1/personal-goals", headers=app_h,
                     json={"title": "Walk to the shop and back", "levels": levels}).json
    g2 = client.post("/v1/patients/p-1/personal-goals", headers=clin,
                     json={"title": "Sleep through most nights", "weight": 2, "levels": levels}).json
    assert client.post("/v1/patients/p-1/personal-goals", headers=clin,
                       json={"title": "x", "levels": {"0": "only one"}}).status_code == 422
    rate = lambda g, h, level, day: client.post(f"/v1/patients/p-1/personal-goals/{g['id']}/ratings", headers=h,
                                                json={"level": level, "rated_on": day})
    assert rate(g1, app_h, -1, "2026-03-01").json["rated_by"] == "patient"
    assert rate(g2, clin, 0, "2026-03-01").json["rated_by"] == "clinician"
    rate(g1, app_h, 1, "2026-03-02")
    assert rate(g1, app_h, 3, "2026-03-02").status_code == 422
    assert rate(g1, app_h, 0, "2026-04-01").status_code == 422  # the clock says 2 March: future
    gas = client.get("/v1/patients/p-1/personal-goals", headers=clin).json["gas"]
    assert gas["rho"] == 0.3

    # Kiresuk & Sherman (1968) T = 50 + 10 Σwx / sqrt((1-ρ)Σw² + ρ(Σw)²), computed here by hand
    def t(xs, ws, rho=0.3):
        return 50 + 10 * sum(w * x for w, x in zip(ws, xs)) / math.sqrt(
            (1 - rho) * sum(w * w for w in ws) + rho * sum(ws) ** 2)
    assert [p["date"] for p in gas["series"]] == ["2026-03-01", "2026-03-02"]
    assert gas["series"][0]["t_score"] == pytest.approx(t([-1, 0], [1, 2]), abs=1e-9)  # 50 - 10/sqrt(5.5)
    assert gas["series"][1]["t_score"] == pytest.approx(t([1, 0], [1, 2]), abs=1e-9)
    assert client.delete(f"/v1/patients/p-1/personal-goals/{g2['id']}", headers=clin).status_code == 204
    gas = client.get("/v1/patients/p-1/personal-goals", headers=clin).json["gas"]
    assert gas["series"][-1]["t_score"] == pytest.approx(t([1], [1]), abs=1e-9)  # one goal at +1: 60
    r = client.patch(f"/v1/patients/p-1/personal-goals/{g1['id']}", headers=clin, json={"levels": {"2": "the park"}})
    assert r.json["levels"]["2"] == "the park" and len(r.json["ratings"]) == 2
    client.put("/v1/settings/alerts", headers=keys["admin"], json={"enabled_rules": [], "gas_rho": 0.5})
    gas = client.get("/v1/patients/p-1/personal-goals", headers=clin).json["gas"]
    assert gas["rho"] == 0.5 and gas["series"][0]["t_score"] == pytest.approx(t([-1], [1], rho=0.5), abs=1e-9)


def test_a_failing_rule_never_blocks_the_finishing_answer(client, keys, clock, monkeypatch, caplog):
    """An unforeseen error in the rules is logged and undone; the answer and its scores are kept."""
    import cat_prom.clinical.rules as rules

    def boom(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr(rules, "evaluate_domain", boom)
    view = _sitting(client, keys["patient-app"], "p-bug", 4)
    assert view["results"][0]["status"] == "scored"
    res = client.get("/v1/patients/p-bug/results", headers=keys["clinician"]).json["sessions"]
    assert len(res) == 1 and res[0]["results"][0]["change"] is not None  # domain results were stored
    assert client.get("/v1/alerts", headers=keys["clinician"]).json["alerts"] == []
    assert any("alert rules failed" in r.getMessage() and "p-bug" not in r.getMessage() for r in caplog.records)

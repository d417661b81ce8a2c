"""Clinician pages without a browser: sign-in cookie, access to the report in each format, CSRF,
headers, not-scored domains, the PDF's pages and text."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest

from clinicdata import START, acceptable, personal_goal, sitting

REAL_BANKS = __import__("pathlib").Path(__file__).resolve().parents[2] / "item_banks"


@pytest.fixture
def real_app(tmp_path):
    from apihelpers import make_app
    app = make_app(REAL_BANKS, f"sqlite:///{tmp_path / 'clinic.sqlite'}", SECRET_KEY="pepper")
    yield app
    app.extensions["cat_prom"].store.dispose()


@pytest.fixture
def seeded(real_app, monkeypatch):
    from apihelpers import Keys
    keys = Keys(real_app)
    c = real_app.test_client()
    sitting(c, keys["patient-app"], "p-1", 1, START, monkeypatch)
    sitting(c, keys["patient-app"], "p-1", 4, START + dt.timedelta(days=7), monkeypatch)
    acceptable(c, keys["clinician"], "p-1", "pain-intensity", 60)
    personal_goal(c, keys["clinician"], "p-1", "Walk the dog", [("2026-10-01", -1), ("2026-10-08", 1)])
    return real_app, c, keys


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _sign_in(c, keys) -> None:
    token = _csrf(c.get("/clinic/sign-in").get_data(as_text=True))
    r = c.post("/clinic/sign-in", data={"csrf_token": token, "key": keys["clinician"]["Authorization"][7:]})
    assert r.status_code == 303


def test_report_access_by_format_and_role(seeded):
    app, c, keys = seeded
    r = c.get("/v1/patients/p-1/report?format=json")
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    r = c.get("/v1/patients/p-1/report", headers={"Accept": "text/html"})
    assert r.status_code == 303 and "/clinic/sign-in?next=" in r.location
    assert c.get("/v1/patients/p-1/report?format=json", headers=keys["patient-app"]).status_code == 403
    assert c.get("/v1/patients/p-1/report?format=xml", headers=keys["clinician"]).status_code == 422
    r = c.get("/v1/patients/p-1/report?format=json", headers=keys["clinician"])
    assert r.status_code == 200 and r.json["n_sittings"] == 2 and r.headers["Cache-Control"] == "no-store"
    pain = next(d for d in r.json["domains"] if d["bank_id"] == "pain-intensity")
    assert pain["acceptable"]["t_score"] == 60 and pain["points"][-1]["reaches_mid"]
    assert r.json["open_alerts"] and r.json["latest"]["domains"][0]["questions"][0]["stem"]
    gas = r.json["personal_goals"]
    assert [x["level"] for x in gas["goals"][0]["ratings"]] == [-1, 1] and len(gas["gas"]["series"]) == 2
    other = c.get("/v1/patients/p-1/report?format=json", headers=keys["clinician@other"]).json
    assert other["n_sittings"] == 0 and other["open_alerts"] == [] and other["latest"] is None
    r = c.get("/v1/patients/p-1/report", headers={**keys["clinician"], "Accept": "text/html"})
    assert r.mimetype == "text/html" and "script-src 'none'" in r.headers["Content-Security-Policy"]


def test_sign_in_cookie_csrf_sign_out_and_key_revocation(seeded):
    app, c, keys = seeded
    page = c.get("/clinic/sign-in")
    for h in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
        assert h in page.headers
    assert c.post("/clinic/sign-in", data={"key": keys["clinician"]["Authorization"][7:]}).status_code == 400
    token = _csrf(page.get_data(as_text=True))
    for wrong in ("cpk_nope", keys["patient-app"]["Authorization"][7:], ""):
        assert c.post("/clinic/sign-in", data={"csrf_token": token, "key": wrong}).status_code == 401
    r = c.post("/clinic/sign-in", data={"csrf_token": token, "key": keys["clinician"]["Authorization"][7:],
                                        "next": "//evil.example/x"})
    assert r.status_code == 303 and r.location == "/clinic/patients"
    cookie = r.headers["Set-Cookie"]
    assert all(x in cookie for x in ("cp_clinician=", "HttpOnly", "Secure", "SameSite=Lax", "Expires="))
    listing = c.get("/clinic/patients")
    assert listing.status_code == 200 and "p-1" in listing.get_data(as_text=True)
    assert listing.headers["Cache-Control"] == "no-store"
    # Forms without a CSRF token are refused.
    alert_id = c.get("/v1/patients/p-1/report?format=json").json["open_alerts"][0]["id"]
    assert c.post(f"/clinic/patients/p-1/alerts/{alert_id}/acknowledge", data={"note": "x"}).status_code == 400
    html = c.get("/v1/patients/p-1/report", headers={"Accept": "text/html"}).get_data(as_text=True)
    r = c.post(f"/clinic/patients/p-1/alerts/{alert_id}/acknowledge", data={"csrf_token": _csrf(html), "note": " "})
    assert "done=note-needed" in r.location
    r = c.post(f"/clinic/patients/p-1/alerts/{alert_id}/acknowledge", data={"csrf_token": _csrf(html), "note": "ok"})
    assert "done=acknowledged" in r.location
    assert c.get(f"/v1/alerts/{alert_id}", headers=keys["clinician"]).json["status"] == "acknowledged"
    assert c.post("/clinic/patients/p-1/goals/pain-intensity", data={"t_score": "55"}).status_code == 400
    assert c.post("/clinic/sign-out").status_code == 400
    # Goal editing through the form.
    html = c.get("/v1/patients/p-1/report", headers={"Accept": "text/html"}).get_data(as_text=True)
    r = c.post("/clinic/patients/p-1/goals/pain-intensity",
               data={"csrf_token": _csrf(html), "t_score": "55", "agreed_by": "both", "note": "agreed today"})
    assert r.status_code == 303 and "done=goal-saved" in r.location
    goals = c.get("/v1/patients/p-1/goals", headers=keys["clinician"]).json["current"]
    assert next(g for g in goals if g["bank_id"] == "pain-intensity")["t_score"] == 55
    # Sign-out ends the session server-side: replaying the old cookie no longer works.
    old = c.get_cookie("cp_clinician").value
    assert c.post("/clinic/sign-out", data={"csrf_token": _csrf(html)}).status_code == 303
    c.set_cookie("cp_clinician", old)
    assert c.get("/clinic/patients").status_code == 303
    # Revoking the key ends its browser sessions too.
    _sign_in(c, keys)
    assert c.get("/clinic/patients").status_code == 200
    from api import keys as keys_mod
    store = app.extensions["cat_prom"].store
    key_id = next(k["id"] for k in keys_mod.list_keys(store) if k["role"] == "clinician" and k["tenant"] == "default")
    keys_mod.revoke_key(store, key_id)
    assert c.get("/clinic/patients").status_code == 303


def test_not_scored_domain_is_shown_as_such(real_app, monkeypatch):
    from apihelpers import Keys
    keys = Keys(real_app)
    c = real_app.test_client()
    r = c.post("/v1/sessions", json={"banks": ["nausea", "pain-intensity"], "patient": "p-ns"},
               headers=keys["patient-app"])
    view = r.json
    while view["status"] == "in_progress":
        q = view["question"]
        body = {"seq": q["seq"], "item_id": q["item_id"]}
        body.update({"declined": True} if q["bank_id"] == "nausea" else {"value": q["options"][1]["value"]})
        view = c.post(f"/v1/sessions/{view['id']}/responses", json=body, headers=keys["patient-app"]).json
    rep = c.get("/v1/patients/p-ns/report?format=json", headers=keys["clinician"]).json
    nausea = next(d for d in rep["domains"] if d["bank_id"] == "nausea")
    assert nausea["points"][0]["status"] == "not_scored" and nausea["points"][0]["t_score"] is None
    html = c.get("/v1/patients/p-ns/report?format=html", headers=keys["clinician"]).get_data(as_text=True)
    assert "not scored" in html
    pdf = c.get("/v1/patients/p-ns/report?format=pdf", headers=keys["clinician"])
    from pypdf import PdfReader
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "not scored" in text


def test_pdf_pages_and_text(seeded):
    app, c, keys = seeded
    r = c.get("/v1/patients/p-1/report?format=pdf", headers=keys["clinician"])
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.headers["Cache-Control"] == "no-store"
    from pypdf import PdfReader
    doc = PdfReader(io.BytesIO(r.data))
    assert 1 <= len(doc.pages) <= 2
    w, h = float(doc.pages[0].mediabox.width), float(doc.pages[0].mediabox.height)
    assert (round(w), round(h)) == (595, 842)  # A4 in points
    text = " ".join(p.extract_text() for p in doc.pages)
    for want in ("cat-prom report · patient p-1 · 2026-10-01 to 2026-10-08", "Demonstration banks",
                 "Open alerts", "pain intensity", "Latest sitting, question by question", "stopped:",
                 "Walk the dog", "GAS T-score"):
        assert want in text, want


def test_personal_goal_forms_use_the_api_rules(seeded):
    app, c, keys = seeded
    _sign_in(c, keys)
    html = c.get("/v1/patients/p-1/report", headers={"Accept": "text/html"}).get_data(as_text=True)
    token = _csrf(html)
    levels = {f"level_{k}": f"text {k}" for k in ("-2", "-1", "0", "1", "2")}
    r = c.post("/clinic/patients/p-1/personal-goals", data={"csrf_token": token, "title": "Sleep through",
                                                             "weight": "2", **levels})
    assert r.status_code == 303 and "done=gas-created" in r.location
    missing = {**levels, "level_2": ""}
    r = c.post("/clinic/patients/p-1/personal-goals", data={"csrf_token": token, "title": "x", **missing})
    assert "done=gas-invalid" in r.location
    goals = c.get("/v1/patients/p-1/personal-goals", headers=keys["clinician"]).json["goals"]
    new = next(g for g in goals if g["title"] == "Sleep through")
    assert new["weight"] == 2 and new["levels"]["-2"] == "text -2" and len(goals) == 2
    r = c.post(f"/clinic/patients/p-1/personal-goals/{new['id']}/ratings",
               data={"csrf_token": token, "level": "1", "note": "better week"})
    assert "done=gas-rated" in r.location
    r = c.post(f"/clinic/patients/p-1/personal-goals/{new['id']}/ratings", data={"csrf_token": token, "level": "3"})
    assert "done=gas-invalid" in r.location
    goals = c.get("/v1/patients/p-1/personal-goals", headers=keys["clinician"]).json["goals"]
    assert [x["level"] for x in next(g for g in goals if g["id"] == new["id"])["ratings"]] == [1]
    assert c.post(f"/clinic/patients/p-1/personal-goals/{new['id']}/ratings", data={"level": "1"}).status_code == 400
    page = c.get("/v1/patients/p-1/report?done=gas-rated", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "Rating saved." in page and "Sleep through" in page


def test_form_cookie_sessions_open_what_flasks_own_interface_opens(app):
    """api.pages.FormCookieSessions skips building the signing serializer when a request has no
    cookie; with or without a (valid, tampered) form cookie it opens the same session as Flask's."""
    from flask import request
    from flask.sessions import SecureCookieSessionInterface

    from api.pages import FormCookieSessions
    assert isinstance(app.session_interface, FormCookieSessions)
    flasks = SecureCookieSessionInterface()
    good = flasks.get_signing_serializer(app).dumps({"csrf_token": "abc"})
    for headers in ({}, {"Cookie": f"cp_form={good}"}, {"Cookie": f"cp_form={good[:-2]}xx"},
                    {"Cookie": "other=1"}):
        with app.test_request_context("/v1/banks", headers=headers):
            ours, theirs = app.session_interface.open_session(app, request), flasks.open_session(app, request)
            assert type(ours) is type(theirs) and dict(ours) == dict(theirs)
            assert not ours.modified and not ours.new
    with app.test_request_context("/v1/banks", headers={"Cookie": f"cp_form={good}"}):
        assert dict(app.session_interface.open_session(app, request)) == {"csrf_token": "abc"}

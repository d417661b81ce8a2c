"""The access matrix: every route of the app's url_map × every way a caller can present itself.

Callers: a key of each role (patient-app, clinician, researcher, admin) of the tenant that owns
the data and of another tenant; no key; a wrong key; a revoked key and an expired key of each role;
a patient link token used as a bearer key (and, for the clinician pages, as their sign-in cookie).

Expectations, written here independently of the code's decorators:
- a route needing a key: no key, a wrong, revoked, expired or link-token key → 401 problem+json
  (on /fhir a link token is known: 403 OperationOutcome off its own questionnaire);
- a role the route's table row does not list → 403;
- an allowed role of the owning tenant → 2xx;
- an allowed role of another tenant → never any of the owning tenant's ids in the reply (404,
  or an empty list / its own data);
- public routes (probes, document, reference, static, FHIR metadata, sign-in form): never 401/403/5xx;
- clinician pages without a sign-in cookie, whatever bearer key is sent: 303 to the sign-in page;
- the patient page `/take/<token>`: its own live token 200, a revoked one 410, an unknown one 404.

The counts (cells tested, cells failed) are written into docs/reliability.md between the
``access-matrix`` markers: rerun with ``CAT_PROM_UPDATE_DOCS=1`` to refresh them; otherwise the
test checks that the page states the counts it just measured.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from api import keys as keys_mod

from apihelpers import Keys
from fhirhelpers import run_fhir, start_body
from test_clinical_access import LEVELS, _world

ROLES = ("patient-app", "clinician", "researcher", "admin")
ALL = set(ROLES)
PUBLIC = "public"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"

#: (method, url rule) -> roles allowed, or PUBLIC. Independent of the `require` decorators.
ALLOWED = {
    ("GET", "/healthz"): PUBLIC, ("GET", "/readyz"): PUBLIC, ("GET", "/v1/openapi.json"): PUBLIC,
    ("GET", "/v1/docs"): PUBLIC, ("GET", "/v1/docs/reference.js"): PUBLIC, ("GET", "/"): PUBLIC,
    ("GET", "/docs"): PUBLIC, ("GET", "/static/<path:filename>"): PUBLIC,
    ("GET", "/pages/static/<path:filename>"): PUBLIC, ("GET", "/fhir/metadata"): PUBLIC,
    ("GET", "/clinic/sign-in"): PUBLIC,
    ("GET", "/v1/banks"): ALL, ("GET", "/v1/banks/<string:bank_id>"): ALL,
    ("POST", "/v1/sessions"): {"patient-app"},
    ("GET", "/v1/sessions/<string:session_id>"): {"patient-app", "clinician"},
    ("DELETE", "/v1/sessions/<string:session_id>"): {"patient-app"},
    ("POST", "/v1/sessions/<string:session_id>/responses"): {"patient-app"},
    ("GET", "/v1/patients"): {"clinician"},
    ("GET", "/v1/patients/<string:patient_ref>/results"): {"clinician"},
    ("GET", "/v1/patients/<string:patient_ref>/report"): {"clinician"},
    ("POST", "/v1/patients/<string:patient_ref>/links"): {"patient-app", "clinician"},
    ("DELETE", "/v1/patients/<string:patient_ref>/links/<string:link_id>"): {"patient-app", "clinician"},
    ("GET", "/v1/patients/<string:patient_ref>/goals"): {"patient-app", "clinician"},
    ("PUT", "/v1/patients/<string:patient_ref>/goals/<string:bank_id>"): {"patient-app", "clinician"},
    ("PUT", "/v1/patients/<string:patient_ref>/baselines/<string:bank_id>"): {"clinician"},
    ("GET", "/v1/patients/<string:patient_ref>/personal-goals"): {"patient-app", "clinician"},
    ("POST", "/v1/patients/<string:patient_ref>/personal-goals"): {"patient-app", "clinician"},
    ("PATCH", "/v1/patients/<string:patient_ref>/personal-goals/<string:goal_id>"): {"patient-app", "clinician"},
    ("DELETE", "/v1/patients/<string:patient_ref>/personal-goals/<string:goal_id>"): {"patient-app", "clinician"},
    ("POST", "/v1/patients/<string:patient_ref>/personal-goals/<string:goal_id>/ratings"):
        {"patient-app", "clinician"},
    ("GET", "/v1/alerts"): {"clinician"}, ("GET", "/v1/alerts/stats"): {"clinician", "admin"},
    ("GET", "/v1/alerts/<string:alert_id>"): {"clinician"},
    ("POST", "/v1/alerts/<string:alert_id>/acknowledge"): {"clinician"},
    ("GET", "/v1/settings"): {"admin"}, ("PUT", "/v1/settings/alerts"): {"admin"},
    ("PUT", "/v1/settings/banks/<string:bank_id>"): {"admin"},
    ("GET", "/v1/webhooks"): {"admin"}, ("POST", "/v1/webhooks"): {"admin"},
    ("PATCH", "/v1/webhooks/<string:endpoint_id>"): {"admin"},
    ("GET", "/v1/webhooks/<string:endpoint_id>/deliveries"): {"admin"},
    ("GET", "/v1/keys"): {"admin"}, ("POST", "/v1/keys"): {"admin"},
    ("DELETE", "/v1/keys/<string:key_id>"): {"admin"},
    ("POST", "/v1/simulations"): {"researcher", "admin"},
    ("GET", "/v1/simulations/<string:job_id>"): {"researcher", "admin"},
    ("GET", "/v1/audit"): {"admin"},
    ("GET", "/v1/patients/<string:patient_ref>/export"): {"clinician", "admin"},
    ("DELETE", "/v1/patients/<string:patient_ref>"): {"admin"},
    ("GET", "/fhir/Questionnaire"): ALL, ("GET", "/fhir/Questionnaire/<string:qid>"): ALL,
    ("POST", "/fhir/Questionnaire/$next-question"): {"patient-app"},
    ("POST", "/fhir/Questionnaire/<string:qid>/$next-question"): {"patient-app"},
    ("POST", "/fhir/QuestionnaireResponse"): {"patient-app"},
    ("GET", "/fhir/QuestionnaireResponse/<string:sid>"): {"clinician"},
    ("GET", "/fhir/Observation/<string:oid>"): {"clinician"},
    ("GET", "/fhir/Observation"): {"clinician"},
}
#: Clinician pages (sign-in cookie, not a bearer key) and the patient page (link token).
COOKIE_PAGES = {("POST", "/clinic/sign-in"), ("POST", "/clinic/sign-out"), ("GET", "/clinic/patients"),
                ("POST", "/clinic/patients/<patient_ref>/alerts/<alert_id>/acknowledge"),
                ("POST", "/clinic/patients/<patient_ref>/goals/<bank_id>"),
                ("POST", "/clinic/patients/<patient_ref>/personal-goals"),
                ("POST", "/clinic/patients/<patient_ref>/personal-goals/<goal_id>/ratings")}
LINK_PAGES = {("GET", "/take/<token>"), ("POST", "/take/<token>")}


def _full_world(client, keys):
    w = _world(client, keys)
    app_h = keys["patient-app"]
    live = client.post("/v1/sessions", json={"banks": ["pain-intensity"], "patient": "p-1"}, headers=app_h).json
    w["live"] = live["id"]
    w["question"] = live["question"]
    link = client.post("/v1/patients/p-1/links", json={"battery": "pain-core"}, headers=app_h).json
    w["link"], w["token"] = link["id"], link["url"].rsplit("/take/", 1)[1]
    w["key"] = keys.make("researcher")["_id"]
    job = client.post("/v1/simulations", json={"bank": "pain-intensity", "n": 5, "seed": 1}, headers=keys["researcher"])
    assert job.status_code == 202, job.json
    w["job"] = job.json["id"]
    obs = client.get("/fhir/Observation?patient=p-1", headers=keys["clinician"]).json
    w["obs"] = obs["entry"][0]["resource"]["id"]
    return w


def _request(w, method, rule):
    """The concrete (path, JSON body) for one route, on the owning tenant's data."""
    goal = f"/v1/patients/p-1/personal-goals/{w['goal']}"
    q = w["question"]
    table = {
        "/static/<path:filename>": "/static/reference.js",
        "/pages/static/<path:filename>": "/pages/static/pages.css",
        "/v1/banks/<string:bank_id>": "/v1/banks/pain-intensity",
        "/v1/sessions": ("/v1/sessions", {"battery": "pain-core", "patient": "p-1"}),
        "/v1/sessions/<string:session_id>": f"/v1/sessions/{w['live']}",
        "/v1/sessions/<string:session_id>/responses": (
            f"/v1/sessions/{w['live']}/responses", {"seq": q["seq"], "item_id": q["item_id"], "value": 1}),
        "/v1/patients/<string:patient_ref>/results": "/v1/patients/p-1/results",
        "/v1/patients/<string:patient_ref>/report": "/v1/patients/p-1/report?format=json",
        "/v1/patients/<string:patient_ref>/links": ("/v1/patients/p-1/links", {"battery": "pain-core"}),
        "/v1/patients/<string:patient_ref>/links/<string:link_id>": f"/v1/patients/p-1/links/{w['link']}",
        "/v1/patients/<string:patient_ref>/goals": "/v1/patients/p-1/goals",
        "/v1/patients/<string:patient_ref>/goals/<string:bank_id>": (
            "/v1/patients/p-1/goals/pain-intensity", {"t_score": 45, "agreed_by": "both"}),
        "/v1/patients/<string:patient_ref>/baselines/<string:bank_id>": (
            "/v1/patients/p-1/baselines/pain-intensity", {"session_id": w["sid"]}),
        "/v1/patients/<string:patient_ref>/personal-goals": (
            "/v1/patients/p-1/personal-goals", {"title": "x", "levels": LEVELS}),
        "/v1/patients/<string:patient_ref>/personal-goals/<string:goal_id>": (goal, {"title": "y"}),
        "/v1/patients/<string:patient_ref>/personal-goals/<string:goal_id>/ratings": (goal + "/ratings", {"level": 1}),
        "/v1/alerts/<string:alert_id>": f"/v1/alerts/{w['alert']}",
        "/v1/alerts/<string:alert_id>/acknowledge": (f"/v1/alerts/{w['alert']}/acknowledge", {"note": "seen"}),
        "/v1/settings/alerts": ("/v1/settings/alerts", {"enabled_rules": ["severe_band"]}),
        "/v1/settings/banks/<string:bank_id>": ("/v1/settings/banks/pain-intensity", {"mid_t": 4}),
        "/v1/webhooks": ("/v1/webhooks", {"url": "https://example.org/x"}),
        "/v1/webhooks/<string:endpoint_id>": (f"/v1/webhooks/{w['hook']}", {"active": False}),
        "/v1/webhooks/<string:endpoint_id>/deliveries": f"/v1/webhooks/{w['hook']}/deliveries",
        "/v1/keys": ("/v1/keys", {"role": "researcher", "name": "n"}),
        "/v1/keys/<string:key_id>": f"/v1/keys/{w['key']}",
        "/v1/simulations": ("/v1/simulations", {"bank": "pain-intensity", "n": 5, "seed": 1}),
        "/v1/simulations/<string:job_id>": f"/v1/simulations/{w['job']}",
        "/v1/audit": "/v1/audit?patient=p-1",
        "/v1/patients/<string:patient_ref>/export": "/v1/patients/p-1/export",
        "/v1/patients/<string:patient_ref>": "/v1/patients/p-1?confirm=p-1",
        "/clinic/patients/<patient_ref>/personal-goals": "/clinic/patients/p-1/personal-goals",
        "/clinic/patients/<patient_ref>/personal-goals/<goal_id>/ratings":
            f"/clinic/patients/p-1/personal-goals/{w['goal']}/ratings",
        "/fhir/Questionnaire/<string:qid>": "/fhir/Questionnaire/bank.pain-intensity",
        "/fhir/Questionnaire/$next-question": ("/fhir/Questionnaire/$next-question", None),
        "/fhir/Questionnaire/<string:qid>/$next-question": ("/fhir/Questionnaire/bank.pain-intensity/$next-question", None),
        "/fhir/QuestionnaireResponse": ("/fhir/QuestionnaireResponse", None),
        "/fhir/QuestionnaireResponse/<string:sid>": f"/fhir/QuestionnaireResponse/{w['sid']}",
        "/fhir/Observation/<string:oid>": f"/fhir/Observation/{w['obs']}",
        "/fhir/Observation": "/fhir/Observation?patient=p-1",
        "/take/<token>": f"/take/{w['token']}",
        "/clinic/patients/<patient_ref>/alerts/<alert_id>/acknowledge":
            f"/clinic/patients/p-1/alerts/{w['alert']}/acknowledge",
        "/clinic/patients/<patient_ref>/goals/<bank_id>": "/clinic/patients/p-1/goals/pain-intensity",
    }
    target = table.get(rule, rule)
    return target if isinstance(target, tuple) else (target, None)


def _call(client, method, path, body, headers):
    if body is None and method in ("POST", "PUT", "PATCH") and path.startswith(("/v1", "/fhir")):
        body = {}
    if body is None:
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, headers=headers, json=body)


def _markers(w, method, path):
    """The owning tenant's ids that another tenant's reply must never contain (the patient ref
    too when the caller did not name it: another tenant may have its own patient `p-1`)."""
    ids = [w[k] for k in ("sid", "alert", "goal", "hook", "live", "link", "obs", "job")]
    return ids if "p-1" in path or method != "GET" else [*ids, "p-1"]


def _callers(keys, w, revoked, expired):
    callers = [(f"{r} own", keys[r]) for r in ROLES] + [(f"{r} other tenant", keys[f"{r}@other"]) for r in ROLES]
    callers += [("no key", {}), ("wrong key", {"Authorization": "Bearer cpk_" + "A" * 43}),
                ("link token as key", {"Authorization": "Bearer " + w["token"]})]
    callers += [(f"{r} revoked", h) for r, h in revoked.items()]
    callers += [(f"{r} expired", h) for r, h in expired.items()]
    return callers


ERROR_TYPES = ("application/problem+json", "application/fhir+json")  # FHIR routes answer OperationOutcome


def _expected_ok(name, allowed, resp, w, method, path) -> bool:
    status = resp.status_code
    if status >= 500:
        return False
    if allowed == PUBLIC:
        return status < 400
    if name == "link token as key" and path.startswith("/fhir/"):
        # FHIR knows link tokens (docs/fhir.md): a verified token of another questionnaire, or on a
        # record route, is an identity without the right: 403 OperationOutcome
        return status == 403 and resp.mimetype == "application/fhir+json"
    if name in ("no key", "wrong key", "link token as key") or name.endswith(("revoked", "expired")):
        return status == 401 and resp.mimetype in ERROR_TYPES
    role, _, where = name.partition(" ")
    if role not in allowed:
        return status == 403 and resp.mimetype in ERROR_TYPES
    if where == "own":
        return 200 <= status < 300
    text = resp.get_data(as_text=True)
    return status == 404 or (200 <= status < 300 and not any(m in text for m in _markers(w, method, path)))


def _fhir_body(client, keys, w, rule):
    """Valid FHIR bodies for the POST routes, built with the owning tenant's keys."""
    if rule == "/fhir/Questionnaire/$next-question":
        return start_body("bank.pain-intensity")
    if rule.endswith("$next-question"):
        return start_body()
    if "fhir_done" not in w:
        w["fhir_done"] = run_fhir(client, keys["patient-app"], "bank.pain-intensity")[0][-1]
    return w["fhir_done"]


def test_access_matrix(fhir_app):
    app = fhir_app
    app.config["CAT_PROM_SIM_MAX_ACTIVE"] = 10_000  # every route's world queues a job; no worker runs them here
    routes = sorted((m, r.rule) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"})
    known = set(ALLOWED) | COOKIE_PAGES | LINK_PAGES
    assert not set(routes) - known, f"routes without a row in the access matrix: {sorted(set(routes) - known)}"
    tested = failed = 0
    failures = []
    for method, rule in routes:
        client = app.test_client()
        keys = Keys(app)
        w = _full_world(client, keys)
        revoked = {}
        for r in ROLES:
            made = keys.make(r)
            assert client.delete(f"/v1/keys/{made.pop('_id')}", headers=keys["admin"]).status_code == 200
            revoked[r] = made
        expired = {}
        for r in ROLES:  # a key whose expiry has passed: 401 like a revoked one
            k = keys_mod.create_key(app.extensions["cat_prom"].store, role=r, name="expired",
                                    pepper=app.config.get("CAT_PROM_SECRET_KEY"),
                                    expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
            expired[r] = {"Authorization": "Bearer " + k["key"]}
        path, body = _request(w, method, rule)
        if rule.startswith("/fhir/") and method == "POST":
            body = _fhir_body(client, keys, w, rule)
        allowed = ALLOWED.get((method, rule))
        cells = []
        if (method, rule) in COOKIE_PAGES:
            for name, h in _callers(keys, w, revoked, expired):
                cells.append((name, h, lambda resp: resp.status_code in (303, 400) and
                              (resp.status_code == 400 or "/clinic/sign-in" in resp.location)))
            cells = [c for c in cells if rule != "/clinic/sign-in"] or [
                (name, h, lambda resp: resp.status_code in (400, 401, 303)) for name, h in _callers(keys, w, revoked, expired)]
        elif (method, rule) in LINK_PAGES:
            if method == "GET":
                cells = [("link token own", {}, lambda resp: resp.status_code == 200)]
            cells += [("link token without a form (CSRF)", {}, lambda resp: resp.status_code in (200, 400))]
        else:
            # callers that must not change anything first; the owning tenant's allowed roles last
            callers = sorted(_callers(keys, w, revoked, expired),
                             key=lambda c: c[0].endswith(" own") and allowed != PUBLIC and c[0].split()[0] in allowed)
            cells = [(name, h, None) for name, h in callers]
        for name, h, check in cells:
            if check is None and allowed != PUBLIC and name.endswith(" own") and name.split()[0] in allowed \
                    and method != "GET":
                w = _full_world(client, keys)  # a mutating call gets fresh data (a second DELETE would be 404)
                path, body = _request(w, method, rule)
                if rule.startswith("/fhir/") and method == "POST":
                    body = _fhir_body(client, keys, w, rule)
            resp = _call(client, method, path, body, h)
            ok = check(resp) if check else _expected_ok(name, allowed, resp, w, method, path)
            tested += 1
            if not ok:
                failed += 1
                failures.append(f"{method} {rule} as {name}: {resp.status_code} {resp.get_data(as_text=True)[:200]}")
        if (method, rule) in LINK_PAGES:  # and the revoked / unknown tokens
            assert client.delete(f"/v1/patients/p-1/links/{w['link']}", headers=keys["clinician"]).status_code == 200
            for name, p, want in (("link token revoked", f"/take/{w['token']}", 410),
                                  ("link token unknown", "/take/cpl_" + "x" * 43, 404)):
                resp = client.open(p, method=method, data={"csrf_token": "x"})
                tested += 1
                if resp.status_code != (want if method == "GET" else 400):
                    failed += 1
                    failures.append(f"{method} {rule} as {name}: {resp.status_code}")
    print(f"\naccess matrix: {len(routes)} routes, cells tested {tested}, cells failed {failed}")
    _check_docs(len(routes), tested, failed)
    assert not failures, "\n".join(failures)


def _check_docs(n_routes, tested, failed):
    line = (f"Routes {n_routes} (the app's url_map), callers up to 19 per route: cells tested **{tested}**, "
            f"cells failed **{failed}**.")
    text = DOCS.read_text()
    block = re.compile(r"(<!-- access-matrix -->\n).*?(\n<!-- /access-matrix -->)", re.S)
    if os.environ.get("CAT_PROM_UPDATE_DOCS") == "1":
        DOCS.write_text(block.sub(lambda m: m.group(1) + line + m.group(2), text))
        return
    assert line in text, f"docs/reliability.md should say:\n{line}\n(rerun with CAT_PROM_UPDATE_DOCS=1)"

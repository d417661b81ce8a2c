"""Patient link tokens (``cpl_...``, issue 9) on the /fhir routes: $next-question and storing for the
link's own Questionnaire and patient only; never reading records; expired or revoked -> 401."""
from __future__ import annotations

import datetime as dt

import pytest

from apihelpers import Keys
from fhirhelpers import FHIR, post, run_fhir, start_body
from api.store.pages import patient_links


@pytest.fixture
def fapp(fhir_app):
    return fhir_app


def _link(c, headers, patient="p-link-1", **body):
    r = c.post(f"/v1/patients/{patient}/links", json=body or {"battery": "pain-core"}, headers=headers)
    assert r.status_code == 201, r.get_json()
    link = r.get_json()
    return link, {"Authorization": "Bearer " + link["url"].rsplit("/take/", 1)[1]}


def _outcome(r, status, code):
    assert r.status_code == status, r.get_data(as_text=True)[:400]
    assert r.mimetype == FHIR
    body = r.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["details"]["coding"][0]["code"] == code
    return body


def _store(c, headers, qr):
    return c.post("/fhir/QuestionnaireResponse", json=qr, headers=headers, content_type=FHIR)


def test_link_runs_and_stores_its_own_sitting(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    _, lh = _link(c, keys["patient-app"])
    seen, given = run_fhir(c, lh, "battery.pain-core")
    # the same questions and scores as with a patient-app key
    assert seen[-1]["item"] == run_fhir(c, keys["patient-app"], "battery.pain-core")[0][-1]["item"]
    final = dict(seen[-1])
    final.pop("subject")  # no subject: the link's patient is used
    r = _store(c, lh, final)
    assert r.status_code == 201, r.get_json()
    stored = r.get_json()
    assert stored["subject"]["reference"] == "Patient/p-link-1"
    view = c.get(f"/v1/sessions/{stored['id']}", headers=keys["clinician"]).get_json()
    assert view["patient"] == "p-link-1" and view["battery"] == "pain-core" and len(view["answers"]) == len(given)
    # posting it again, naming the link's patient, stores nothing new
    again = _store(c, lh, dict(seen[-1], subject={"reference": "Patient/p-link-1"}))
    assert again.status_code == 200 and again.get_json() == stored
    # the link may read its own Questionnaire
    assert c.get("/fhir/Questionnaire/battery.pain-core", headers=lh).status_code == 200


def test_link_for_one_bank(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    _, lh = _link(c, keys["clinician"], banks=["pain-interference"])
    assert post(c, lh, start_body(), "bank.pain-interference").status_code == 200
    _outcome(post(c, lh, start_body(), "battery.pain-core"), 403, "forbidden")


def test_link_refused_for_another_questionnaire(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    _, lh = _link(c, keys["patient-app"])
    # instance-level and type-level (the Questionnaire named in the contained derivedFrom)
    _outcome(post(c, lh, start_body(), "bank.pain-interference"), 403, "forbidden")
    _outcome(post(c, lh, start_body("bank.pain-interference")), 403, "forbidden")
    assert post(c, lh, start_body("battery.pain-core")).status_code == 200
    _outcome(c.get("/fhir/Questionnaire/bank.pain-interference", headers=lh), 403, "forbidden")
    _outcome(c.get("/fhir/Questionnaire", headers=lh), 403, "forbidden")
    # a sitting run with a patient-app key for another Questionnaire cannot be stored through the link
    seen, _ = run_fhir(c, keys["patient-app"], "bank.pain-interference")
    _outcome(_store(c, lh, seen[-1]), 403, "forbidden")


def test_link_stores_for_its_own_patient_only(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    _, lh = _link(c, keys["patient-app"], patient="p-link-2")
    seen, _ = run_fhir(c, lh, "battery.pain-core")
    # start_body names Patient/p-fhir-1: not the link's patient
    body = _outcome(_store(c, lh, seen[-1]), 403, "forbidden")
    assert body["issue"][0]["expression"] == ["QuestionnaireResponse.subject"]
    _outcome(_store(c, lh, dict(seen[-1], subject={"identifier": {"value": "p-other"}})), 403, "forbidden")
    assert c.get("/fhir/Observation?subject=Patient/p-fhir-1", headers=keys["clinician"]).get_json().get(
        "entry", []) == []
    assert _store(c, lh, dict(seen[-1], subject={"reference": "Patient/p-link-2"})).status_code == 201


def test_link_never_reads_records(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    _, lh = _link(c, keys["patient-app"], patient="p-link-3")
    seen, _ = run_fhir(c, lh, "battery.pain-core")
    sid = _store(c, lh, dict(seen[-1], subject={"reference": "Patient/p-link-3"})).get_json()["id"]
    for url in (f"/fhir/QuestionnaireResponse/{sid}", "/fhir/Observation?subject=Patient/p-link-3",
                f"/fhir/Observation/{sid}.0"):
        _outcome(c.get(url, headers=lh), 403, "forbidden")
        assert c.get(url, headers=keys["clinician"]).status_code == 200, url


def test_expired_revoked_and_unknown_links_get_401(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    revoked, rh = _link(c, keys["patient-app"])
    seen, _ = run_fhir(c, rh, "battery.pain-core")
    assert c.delete(f"/v1/patients/p-link-1/links/{revoked['id']}", headers=keys["clinician"]).status_code == 200
    expired, eh = _link(c, keys["patient-app"])
    with fapp.extensions["cat_prom"].store.write() as conn:
        conn.execute(patient_links.update().where(patient_links.c.id == expired["id"])
                     .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    unknown = {"Authorization": "Bearer cpl_" + "A" * 43}
    for h, word in ((rh, "revoked"), (eh, "expired"), (unknown, "not valid")):
        for r in (post(c, h, start_body(), "battery.pain-core"), post(c, h, seen[1]), _store(c, h, seen[-1]),
                  c.get("/fhir/Observation?subject=Patient/p-link-1", headers=h),
                  c.get("/fhir/Questionnaire/battery.pain-core", headers=h)):
            body = _outcome(r, 401, "unauthorized")
            assert word in body["issue"][0]["diagnostics"] and "invalid_token" in r.headers["WWW-Authenticate"]

"""Stored sittings read as FHIR: the QuestionnaireResponse and one Observation per domain."""
from __future__ import annotations

import pytest

from apihelpers import Keys
from fhirhelpers import run_fhir


@pytest.fixture
def fapp(fhir_app):
    return fhir_app


def _json_sitting(c, ph, patient, given, battery="pain-core", banks=None):
    body = {"patient": patient, **({"battery": battery} if banks is None else {"banks": banks})}
    view = c.post("/v1/sessions", json=body, headers=ph).get_json()
    sid = view["id"]
    i = 0
    while view["status"] == "in_progress":
        q = view["question"]
        item_id, value = given(i, q)
        a = {"seq": q["seq"], "item_id": item_id}
        a.update({"declined": True} if value is None else {"value": value})
        view = c.post(f"/v1/sessions/{sid}/responses", json=a, headers=ph).get_json()
        i += 1
    return sid, view


def test_json_api_sitting_reads_as_the_fhir_sitting(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    ph, ch = keys["patient-app"], keys["clinician"]
    seen, given = run_fhir(c, ph, "battery.pain-core")
    sid, view = _json_sitting(c, ph, "p-rec-1", lambda i, q: (given[i][0], None if given[i][1] is None
                                                              else int(given[i][1])))
    qr = c.get(f"/fhir/QuestionnaireResponse/{sid}", headers=ch)
    assert qr.status_code == 200 and qr.mimetype == "application/fhir+json"
    qr = qr.get_json()
    assert qr["status"] == "completed" and qr["id"] == sid
    assert qr["subject"]["reference"] == "Patient/p-rec-1"
    assert qr["questionnaire"].endswith("/fhir/Questionnaire/battery.pain-core")
    # the same items, answers and score groups as the $next-question sitting with the same answers
    assert qr["item"] == seen[-1]["item"]

    obs = c.get("/fhir/Observation?subject=Patient/p-rec-1", headers=ch).get_json()
    assert obs["resourceType"] == "Bundle" and obs["type"] == "searchset"
    res = [e["resource"] for e in obs["entry"]]
    assert len(res) == len(view["results"]) == 4
    for o, r in zip(res, view["results"]):
        assert o["valueQuantity"]["value"] == r["t_score"]
        comp = {x["code"]["coding"][0]["code"]: x for x in o["component"]}
        assert comp["theta"]["valueQuantity"]["value"] == r["theta"]
        assert comp["se"]["valueQuantity"]["value"] == r["se"]
        assert comp["band"]["valueString"] == r["band"]
        assert comp["stop-reason"]["valueString"] == r["stop_reason"]
        assert o["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{sid}"}]
        assert o["code"]["coding"][0] == {"system": "urn:cat-prom:fhir:bank", "code": r["bank_id"],
                                          "display": fapp.extensions["cat_prom"].registry.banks[r["bank_id"]].name}
        assert o["method"]["coding"][0]["code"] == "cat-eap"
        one = c.get(f"/fhir/Observation/{o['id']}", headers=ch).get_json()
        assert one == o
    # patient= is accepted as well, and a bare reference
    assert c.get("/fhir/Observation?patient=p-rec-1", headers=ch).get_json()["entry"] == obs["entry"]


def test_not_scored_domain_has_no_number(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    ph, ch = keys["patient-app"], keys["clinician"]
    sid, view = _json_sitting(c, ph, "p-rec-2", lambda i, q: (q["item_id"], None), banks=["sleep-disturbance"])
    assert view["status"] == "finished" and view["results"][0]["n_answered"] == 0
    o = c.get("/fhir/Observation?subject=Patient/p-rec-2", headers=ch).get_json()["entry"][0]["resource"]
    assert "valueQuantity" not in o
    assert o["dataAbsentReason"]["coding"][0]["code"] == "asked-declined"
    assert {x["code"]["coding"][0]["code"] for x in o.get("component", [])} == {"stop-reason"}
    qr = c.get(f"/fhir/QuestionnaireResponse/{sid}", headers=ch).get_json()
    scores = qr["item"][-1]["item"]
    for it in scores[:4]:  # theta, se, t-score, band: no answer, a data-absent-reason
        assert "answer" not in it and it["extension"][0]["valueCode"] == "asked-declined"


def test_records_need_a_clinician_key_of_the_tenant(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    ph = keys["patient-app"]
    sid, _ = _json_sitting(c, ph, "p-rec-3", lambda i, q: (q["item_id"], q["options"][0]["value"]),
                           banks=["pain-intensity"])
    r = c.get(f"/fhir/QuestionnaireResponse/{sid}", headers=ph)
    assert r.status_code == 403 and r.get_json()["resourceType"] == "OperationOutcome"
    other = keys["clinician@other"]
    r = c.get(f"/fhir/QuestionnaireResponse/{sid}", headers=other)
    assert r.status_code == 404 and r.get_json()["issue"][0]["details"]["coding"][0]["code"] == "session-not-found"
    assert c.get("/fhir/Observation?subject=Patient/p-rec-3", headers=other).get_json()["entry"] == []
    for bad in ("", "Patient/", "x" * 200, "a b"):
        r = c.get("/fhir/Observation", query_string={"subject": bad}, headers=keys["clinician"])
        assert r.status_code == 400 and r.get_json()["issue"][0]["expression"] == ["subject"]
    assert c.get(f"/fhir/Observation/{sid}.7", headers=keys["clinician"]).status_code == 404
    assert c.get("/fhir/Observation/nodot", headers=keys["clinician"]).status_code == 404


def test_in_progress_sitting_and_paging(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    ph, ch = keys["patient-app"], keys["clinician"]
    view = c.post("/v1/sessions", json={"banks": ["pain-intensity"], "patient": "p-rec-4"}, headers=ph).get_json()
    qr = c.get(f"/fhir/QuestionnaireResponse/{view['id']}", headers=ch).get_json()
    assert qr["status"] == "in-progress" and "item" not in qr
    assert c.get(f"/fhir/Observation/{view['id']}.0", headers=ch).status_code == 404
    for _ in range(3):
        _json_sitting(c, ph, "p-rec-5", lambda i, q: (q["item_id"], q["options"][1]["value"]),
                      banks=["pain-intensity"])
    page = c.get("/fhir/Observation?subject=Patient/p-rec-5&_count=2", headers=ch).get_json()
    assert len(page["entry"]) == 2
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = c.get(nxt.split("/fhir", 1)[1].join(["/fhir", ""]), headers=ch).get_json()
    assert len(rest["entry"]) == 1 and not any(link["relation"] == "next" for link in rest.get("link", []))


def test_completed_fhir_sitting_is_stored_once_and_reads_like_a_json_sitting(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    ph, ch = keys["patient-app"], keys["clinician"]
    seen, given = run_fhir(c, ph, "battery.pain-core")
    final = seen[-1]
    # not finished yet: refused
    r = c.post("/fhir/QuestionnaireResponse", json=seen[3], headers=ph, content_type="application/fhir+json")
    assert r.status_code == 422 and r.get_json()["issue"][0]["details"]["coding"][0]["code"] == "fhir-sitting-unfinished"
    r = c.post("/fhir/QuestionnaireResponse", json=final, headers=ph, content_type="application/fhir+json")
    assert r.status_code == 201, r.get_json()
    stored = r.get_json()
    sid = stored["id"]
    assert r.headers["Location"].endswith(f"/fhir/QuestionnaireResponse/{sid}")
    assert stored["item"] == final["item"] and stored["status"] == "completed"
    assert stored["subject"]["reference"] == final["subject"]["reference"] == "Patient/p-fhir-1"
    # posting it again stores nothing new
    again = c.post("/fhir/QuestionnaireResponse", json=final, headers=ph, content_type="application/fhir+json")
    assert again.status_code == 200 and again.get_json() == stored
    # the JSON API sees an ordinary finished sitting with the same answers and scores
    view = c.get(f"/v1/sessions/{sid}", headers=ch).get_json()
    assert view["status"] == "finished" and view["patient"] == "p-fhir-1" and view["battery"] == "pain-core"
    assert [(a["item_id"], a.get("value")) for a in view["answers"]] == [
        (i, None if v is None else int(v)) for i, v in given]
    sid2, view2 = _json_sitting(c, ph, "p-rec-6", lambda i, q: (given[i][0], None if given[i][1] is None
                                                                else int(given[i][1])))
    assert view["results"] == view2["results"]
    obs = c.get("/fhir/Observation?subject=Patient/p-fhir-1", headers=ch).get_json()
    assert len(obs["entry"]) == 4
    # another patient on the same sitting, or a tampered copy, is refused
    other = dict(final, subject={"reference": "Patient/someone-else"})
    assert c.post("/fhir/QuestionnaireResponse", json=other, headers=ph,
                  content_type="application/fhir+json").status_code == 409
    assert c.post("/fhir/QuestionnaireResponse", json=dict(final, subject={"display": "x"}), headers=ph,
                  content_type="application/fhir+json").status_code == 422
    assert c.post("/fhir/QuestionnaireResponse", json=final, headers=ch,
                  content_type="application/fhir+json").status_code == 403


@pytest.mark.postgres
def test_store_and_read_on_postgres(banks_dir, pg_url, pg_schema):
    from apihelpers import make_app
    from fhirhelpers import SIGNING_KEY
    app = make_app(banks_dir, pg_url, DATABASE_SCHEMA=pg_schema, FHIR_SIGNING_KEY=SIGNING_KEY)
    try:
        c = app.test_client()
        keys = Keys(app)
        ph, ch = keys["patient-app"], keys["clinician"]
        seen, given = run_fhir(c, ph, "bank.pain-interference")
        r = c.post("/fhir/QuestionnaireResponse", json=seen[-1], headers=ph, content_type="application/fhir+json")
        assert r.status_code == 201, r.get_json()
        assert c.post("/fhir/QuestionnaireResponse", json=seen[-1], headers=ph,
                      content_type="application/fhir+json").status_code == 200
        sid = r.get_json()["id"]
        view = c.get(f"/v1/sessions/{sid}", headers=ch).get_json()
        assert view["status"] == "finished" and len(view["answers"]) == len(given)
        assert c.get(f"/fhir/QuestionnaireResponse/{sid}", headers=ch).get_json()["item"] == seen[-1]["item"]
        assert len(c.get("/fhir/Observation?subject=Patient/p-fhir-1", headers=ch).get_json()["entry"]) == 1
    finally:
        app.extensions["cat_prom"].store.dispose()


def test_domain_with_nothing_to_ask_is_not_asked(fapp):
    c = fapp.test_client()
    keys = Keys(fapp)
    bank = fapp.extensions["cat_prom"].registry.banks["sleep-disturbance"]
    r = c.post("/v1/sessions", json={"banks": ["sleep-disturbance"], "patient": "p-rec-7",
                                     "exclude_items": list(bank.ids)}, headers=keys["patient-app"])
    assert r.status_code == 201 and r.get_json()["status"] == "finished", r.get_json()
    o = c.get("/fhir/Observation?subject=Patient/p-rec-7", headers=keys["clinician"]).get_json()["entry"][0]
    assert o["resource"]["dataAbsentReason"]["coding"][0]["code"] == "not-asked"
    assert "valueQuantity" not in o["resource"]


@pytest.mark.parametrize("result, code", [
    ({"status": "not_scored", "status_reason": "all_declined", "t_score": None}, "asked-declined"),
    ({"status": "not_scored", "status_reason": "no_eligible_items", "t_score": None}, "not-asked"),
    ({"status": "not_scored", "status_reason": "no_answers", "t_score": None}, "not-performed"),
    ({"n_answered": 0, "n_declined": 2, "t_score": 50.0}, "asked-declined"),  # results without a status field
    ({"n_answered": 0, "n_declined": 0, "t_score": 50.0}, "not-asked"),
])
def test_not_scored_reasons(result, code):
    from api.fhir.questionnaire import absent_reason
    from cat_prom.evidence import is_scored
    assert not is_scored(result) and absent_reason(result) == code
    assert is_scored({"status": "scored", "n_answered": 1, "t_score": 48.0})

"""Every resource the FHIR interface produces validates against the fhir.resources models (R4B,
wire-compatible with R4 for these resources: docs/fhir.md) and meets the required elements and
invariants of the SDC 4.0.0 profiles it claims; each check names the spec section it comes from."""
from __future__ import annotations

import re

import pytest

from api.fhir.validate import errors
from apihelpers import Keys, make_app
from fhirhelpers import FHIR, SIGNING_KEY, post, run_fhir, start_body

SDC = "http://hl7.org/fhir/uv/sdc"
ADAPTIVE_EXT = f"{SDC}/StructureDefinition/sdc-questionnaire-questionnaireAdaptive"
# value sets of the codes cat-prom writes (FHIR R4 4.0.1)
PUBLICATION_STATUS = {"draft", "active", "retired", "unknown"}  # R4 valueset-publication-status
ITEM_TYPES = {"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string", "text",
              "url", "choice", "open-choice", "attachment", "reference", "quantity"}  # R4 valueset-item-type
QR_STATUS = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}  # R4 questionnaire-answers-status
OBS_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
ISSUE_TYPES = {"invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
               "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches",
               "not-found", "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule",
               "conflict", "transient", "lock-error", "no-store", "exception", "timeout", "incomplete",
               "throttled", "informational"}  # R4 valueset-issue-type
DATA_ABSENT = {"unknown", "asked-unknown", "temp-unknown", "not-asked", "asked-declined", "masked", "not-applicable",
               "unsupported", "as-text", "error", "not-a-number", "negative-infinity", "positive-infinity",
               "not-performed", "not-permitted"}  # terminology.hl7.org data-absent-reason
NAME_RE = re.compile(r"^[A-Z]([A-Za-z0-9_]){1,254}$")  # SDCQuestionnaireCommon invariant cnl-0
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # R4 2.24.0.3 id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from apibanks import write_banks
    d = tmp_path_factory.mktemp("fhirres")
    app = make_app(write_banks(d / "banks"), f"sqlite:///{d / 'r.sqlite'}", FHIR_SIGNING_KEY=SIGNING_KEY)
    c = app.test_client()
    keys = Keys(app)
    ph, ch = keys["patient-app"], keys["clinician"]
    seen, _ = run_fhir(c, ph, "battery.pain-core")
    bank_run, _ = run_fhir(c, ph, "bank.sleep-disturbance")
    questionnaires = c.get("/fhir/Questionnaire", headers=ph).get_json()
    # a finished JSON API sitting, read back as FHIR
    from apihelpers import run_session
    first, _, _ = run_session(c, ph, {"battery": "pain-core", "patient": "p-res-1"})
    records = {
        "qr": c.get(f"/fhir/QuestionnaireResponse/{first['id']}", headers=ch).get_json(),
        "obs": c.get("/fhir/Observation?subject=Patient/p-res-1", headers=ch).get_json(),
    }
    outcomes = [c.get("/fhir/Questionnaire/nope", headers=ph).get_json(),
                post(c, {}, start_body(), "bank.pain-intensity").get_json(),
                c.post("/fhir/Questionnaire/$next-question", data="{", headers=ph, content_type=FHIR).get_json()]
    yield {"app": app, "client": c, "seen": seen, "bank_run": bank_run, "questionnaires": questionnaires,
           "metadata": c.get("/fhir/metadata").get_json(), "records": records, "outcomes": outcomes}
    app.extensions["cat_prom"].store.dispose()


def _all(world):
    yield world["metadata"]
    yield world["questionnaires"]
    yield from (e["resource"] for e in world["questionnaires"]["entry"])
    yield from world["seen"]
    yield from world["bank_run"]
    yield world["records"]["qr"]
    yield world["records"]["obs"]
    yield from (e["resource"] for e in world["records"]["obs"]["entry"])
    yield from world["outcomes"]


def test_every_resource_validates_against_the_models(world):
    n = 0
    for res in _all(world):
        assert errors(res) == [], res.get("resourceType")
        n += 1
    assert n > 30


def test_the_models_reject_what_they_should():
    # a sanity check that validation can fail: required element missing, unknown element, wrong type
    assert errors({"resourceType": "Questionnaire"})
    assert errors({"resourceType": "Questionnaire", "status": "active", "bogus": 1})
    assert errors({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": "7"})


def _adaptive_search_checks(q):
    # SDC 4.0.0 StructureDefinition-sdc-questionnaire-adapt-srch (Adaptive Questionnaire - search):
    assert any(e["url"] == ADAPTIVE_EXT for e in q["extension"])  # extension:questionnaireAdaptive 1..*
    adaptive = [e for e in q["extension"] if e["url"] == ADAPTIVE_EXT]
    assert len(adaptive) == 1 or all("valueUrl" in e for e in adaptive)  # invariant sdc-adaptive-1
    assert "item" not in q  # item 0..0
    # parent SDCQuestionnaireSearch: title 1..1, date 1..1
    assert q["title"] and re.match(r"^\d{4}-\d{2}-\d{2}", q["date"])
    # parent SDCQuestionnaireCommon: cnl-0 name pattern; sdc-2/sdc-3 version => versionAlgorithm semver
    assert NAME_RE.match(q["name"])
    if "version" in q:
        alg = [e for e in q["extension"] if e["url"] == "http://hl7.org/fhir/StructureDefinition/artifact-versionAlgorithm"]
        assert alg and alg[0]["valueCoding"] == {"system": "http://hl7.org/fhir/version-algorithm", "code": "semver"}
    assert q["status"] in PUBLICATION_STATUS and ID_RE.match(q["id"])
    assert f"{SDC}/StructureDefinition/sdc-questionnaire-adapt-srch" in q["meta"]["profile"]


def test_published_questionnaires_meet_the_adaptive_search_profile(world):
    entries = world["questionnaires"]["entry"]
    assert {e["resource"]["id"] for e in entries} == {
        "bank.pain-intensity", "bank.pain-interference", "bank.physical-function", "bank.sleep-disturbance",
        "battery.pain-core"}
    for e in entries:
        _adaptive_search_checks(e["resource"])
        assert e["fullUrl"].endswith("/Questionnaire/" + e["resource"]["id"])
        assert "recall period: past 7 days" in e["resource"]["description"]


def _items(items):
    for it in items or []:
        yield it
        yield from _items(it.get("item"))


def _adaptive_checks(qr):
    # SDC 4.0.0 StructureDefinition-sdc-questionnaireresponse-adapt (Adaptive Questionnaire Response):
    assert len(qr["contained"]) >= 1  # contained 1..*
    assert qr["questionnaire"].startswith("#")  # questionnaire: canonical, aggregation contained
    # parent SDCQuestionnaireResponseCommon: questionnaire 1..1, authored 1..1, item.linkId 1..1
    assert qr["authored"] and qr["status"] in QR_STATUS
    linkids = [it["linkId"] for it in _items(qr.get("item"))]
    answered = [it["linkId"] for it in _items(qr.get("item")) if it.get("answer")]
    assert len(answered) == len(set(answered))  # invariants sdcqr-2 / qrs-2: answered linkIds distinct
    assert "subject" in qr  # invariant sdcqr-1 (SHOULD): kept from the client
    # SDC 4.0.0 StructureDefinition-sdc-questionnaire-adapt (Adaptive Questionnaire):
    cq = next(c for c in qr["contained"] if c["id"] == qr["questionnaire"][1:])
    assert cq["resourceType"] == "Questionnaire"  # invariant sdc-adapt-1: contained, referenced as '#'+id
    assert "url" not in cq and "version" not in cq  # url 0..0, version 0..0
    assert len(cq["derivedFrom"]) == 1  # derivedFrom 1..1
    assert NAME_RE.match(cq["name"]) and cq["status"] in PUBLICATION_STATUS
    qitems = list(_items(cq.get("item")))
    for it in qitems:
        assert it["text"]  # item.text 1..1
        assert it["type"] in ITEM_TYPES and len(it["linkId"]) <= 255  # que-15
        if it["type"] == "group":
            assert it.get("item")  # que-1b
        if it["type"] == "display":
            assert not it.get("item")  # que-1c
        if it["type"] == "choice":
            # answerOption codings carry the response value as itemWeight (SDC 4.0.0, behavior.html#itemWeight)
            weights = [o["valueCoding"].get("extension", [{}])[0].get("valueDecimal") for o in it["answerOption"]]
            assert weights[:-1] == [1, 2, 3, 4, 5]
            last = it["answerOption"][-1]["valueCoding"]
            assert last["system"] == "http://terminology.hl7.org/CodeSystem/data-absent-reason"
            assert last["code"] in DATA_ABSENT
    qids = {it["linkId"] for it in qitems}
    assert set(linkids) <= qids  # every response item answers an item of the contained Questionnaire


def test_every_next_question_reply_meets_the_adaptive_profiles(world):
    for qr in world["seen"] + world["bank_run"]:
        _adaptive_checks(qr)
    assert world["seen"][-1]["status"] == "completed"


def test_final_reply_has_read_only_scores_per_domain(world):
    final = world["seen"][-1]
    cq = final["contained"][0]
    groups = [it for it in cq["item"] if it["linkId"].startswith("score/")]
    assert [g["linkId"] for g in groups] == ["score/pain-intensity", "score/pain-interference",
                                             "score/physical-function", "score/sleep-disturbance"]
    for g in groups:
        assert g["readOnly"] and all(it["readOnly"] for it in g["item"])
        assert [it["linkId"].rsplit("/", 1)[1] for it in g["item"]] == ["theta", "se", "t-score", "band",
                                                                         "stop-reason"]


def test_capability_statement_names_the_operation(world):
    cs = world["metadata"]
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance" and cs["status"] in PUBLICATION_STATUS
    q = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Questionnaire")
    assert q["operation"] == [{"name": "next-question",
                               "definition": f"{SDC}/OperationDefinition/Questionnaire-next-question"}]


def test_observations_and_outcomes_use_their_value_sets(world):
    for e in world["records"]["obs"]["entry"]:
        o = e["resource"]
        assert o["status"] in OBS_STATUS and ID_RE.match(o["id"])
        assert ("valueQuantity" in o) != ("dataAbsentReason" in o)  # obs-6: dataAbsentReason only without a value
    for oo in world["outcomes"]:
        assert oo["issue"][0]["code"] in ISSUE_TYPES

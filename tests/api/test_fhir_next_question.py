"""$next-question: a whole adaptive sitting through FHIR, the same scores as the JSON API, and every
kind of tampering rejected with an OperationOutcome."""
from __future__ import annotations

import base64
import copy
import json

import pytest

from apihelpers import Keys, make_app
from fhirhelpers import (FHIR, choose, current_question, declines, post, run_fhir, scores,
                         start_body, with_answer)


@pytest.fixture
def fapp(fhir_app):
    return fhir_app


@pytest.fixture
def fc(fapp):
    return fapp.test_client()


@pytest.fixture
def ph(fapp):
    return Keys(fapp)["patient-app"]


def _state(qr):
    cq = qr["contained"][0]
    ext = next(e for e in cq["extension"] if e["url"] == "urn:cat-prom:fhir:extension:cat-state")
    return ext, json.loads(ext["extension"][0]["valueString"])


def _issue(r):
    assert r.mimetype == FHIR, (r.status_code, r.mimetype)
    body = r.get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    return issue["code"], issue["details"]["coding"][0]["code"]


def _mid_sitting(fc, ph, rounds=3):
    r = post(fc, ph, start_body(), "battery.pain-core")
    seen = [r.get_json()]
    for _ in range(rounds):
        q = current_question(seen[-1])
        seen.append(post(fc, ph, with_answer(seen[-1], choose(q["linkId"], 5))).get_json())
    return seen


def test_full_battery_matches_the_json_api(fc, ph):
    seen, given = run_fhir(fc, ph, "battery.pain-core")
    final = seen[-1]
    assert final["status"] == "completed"
    assert any(v is None for _, v in given), "the sitting should include a declined item"
    # the same answers through the JSON API (deterministic design: the same items are asked)
    r = fc.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-json-1"}, headers=ph)
    view = r.get_json()
    i = 0
    while view["status"] == "in_progress":
        q = view["question"]
        item_id, value = given[i]
        assert q["item_id"] == item_id, f"question {i + 1}: JSON API asks {q['item_id']}, FHIR asked {item_id}"
        body = {"seq": q["seq"], "item_id": item_id}
        body.update({"declined": True} if value is None else {"value": int(value)})
        view = fc.post(f"/v1/sessions/{view['id']}/responses", json=body, headers=ph).get_json()
        i += 1
    assert i == len(given)
    fhir_scores = scores(final)
    for res in view["results"]:
        s = fhir_scores[res["bank_id"]]
        for code, key in (("theta", "theta"), ("se", "se"), ("t-score", "t_score")):
            assert s[code] == pytest.approx(res[key], abs=1e-9, rel=0)  # same engine, same answers
        assert s["band"] == res["band"] and s["stop-reason"] == res["stop_reason"]


def test_bank_sitting_with_bare_questionnaire_response_and_canonical_reference(fc, ph):
    qr = start_body()["parameter"][0]["resource"]
    qr["questionnaire"] = "http://elsewhere.example/fhir/Questionnaire/bank.sleep-disturbance|1.0"
    r = fc.post("/fhir/Questionnaire/$next-question", json=qr, headers=ph, content_type=FHIR)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["questionnaire"] == "#adaptive" and out["status"] == "in-progress"
    assert current_question(out)["linkId"].startswith("sleep-disturbance/")
    assert out["subject"] == qr["subject"] and out["authored"] == qr["authored"]


def test_start_with_derived_from_and_no_instance_id(fc, ph):
    r = post(fc, ph, start_body("bank.pain-intensity"))
    assert r.status_code == 200, r.get_json()
    assert current_question(r.get_json())["linkId"].startswith("pain-intensity/")


def test_replayed_older_response_gives_the_same_next_question(fc, ph):
    seen = _mid_sitting(fc, ph, rounds=3)
    q = current_question(seen[1])
    again = post(fc, ph, with_answer(seen[1], choose(q["linkId"], 5))).get_json()
    assert again == seen[2]  # byte-for-byte the same reply
    unanswered = post(fc, ph, seen[2]).get_json()  # posted back without a new answer: the same question
    assert unanswered == seen[2]


def test_forged_state_is_rejected(fc, ph):
    seen = _mid_sitting(fc, ph)
    qr = copy.deepcopy(seen[-1])
    ext, state = _state(qr)
    state["o"][0] += "X"
    ext["extension"][0]["valueString"] = json.dumps(state, sort_keys=True, separators=(",", ":"))
    r = post(fc, ph, with_answer(qr, 0))
    assert r.status_code == 422 and _issue(r) == ("security", "fhir-signature-invalid")
    # a signature made with another key
    qr = copy.deepcopy(seen[-1])
    ext, _ = _state(qr)
    ext["extension"][2]["valueBase64Binary"] = base64.b64encode(b"x" * 32).decode()
    r = post(fc, ph, with_answer(qr, 0))
    assert r.status_code == 422 and _issue(r)[1] == "fhir-signature-invalid"
    # a state signed under a rotated key
    qr = copy.deepcopy(seen[-1])
    ext, _ = _state(qr)
    ext["extension"][1]["valueString"] = "0badc0de"
    r = post(fc, ph, with_answer(qr, 0))
    assert r.status_code == 422 and "rotated" in r.get_json()["issue"][0]["diagnostics"]
    # the state removed: the response now claims answers to items never offered
    qr = copy.deepcopy(seen[-1])
    qr["contained"][0]["extension"] = qr["contained"][0]["extension"][:1]
    r = post(fc, ph, with_answer(qr, 0))
    assert r.status_code == 422 and _issue(r)[1] == "fhir-answer-not-offered"


def test_answer_to_an_item_not_offered(fc, ph, fapp):
    seen = _mid_sitting(fc, ph)
    qr = with_answer(seen[-1], 0)
    bank = fapp.extensions["cat_prom"].registry.banks["pain-intensity"]
    offered = set(_state(seen[-1])[1]["o"])
    other = next(it for it in bank.items if f"pain-intensity/{it.id}" not in offered)
    qr["item"].append({"linkId": f"pain-intensity/{other.id}", "answer": [
        {"valueCoding": {"system": "urn:cat-prom:fhir:bank:pain-intensity:item:" + other.id, "code": "1"}}]})
    r = post(fc, ph, qr)
    assert r.status_code == 422 and _issue(r) == ("business-rule", "fhir-answer-not-offered")
    assert r.get_json()["issue"][0]["expression"] == ["QuestionnaireResponse.item[4]"]


@pytest.mark.parametrize("coding", [
    {"code": "9"},  # not an option code
    {"system": "urn:other", "code": "1"},  # a code of another system
    {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"},
])
def test_value_not_among_the_options(fc, ph, coding):
    seen = _mid_sitting(fc, ph, rounds=1)
    qr = with_answer(seen[-1], 0)
    c = qr["item"][-1]["answer"][0]["valueCoding"]
    c.update(coding)
    c.pop("extension", None)
    r = post(fc, ph, qr)
    assert r.status_code == 422 and _issue(r) == ("code-invalid", "fhir-answer-not-an-option")


def test_value_of_another_type_and_two_answers(fc, ph):
    seen = _mid_sitting(fc, ph, rounds=1)
    qr = with_answer(seen[-1], 0)
    qr["item"][-1]["answer"] = [{"valueInteger": 1}]
    assert post(fc, ph, qr).status_code == 422
    qr = with_answer(seen[-1], 0)
    qr["item"][-1]["answer"].append(qr["item"][-1]["answer"][0])
    r = post(fc, ph, qr)
    assert r.status_code == 422 and _issue(r)[1] == "fhir-answer-not-an-option"


def test_edited_earlier_answer_that_changes_the_path(fc, ph):
    seen = _mid_sitting(fc, ph, rounds=3)
    last = with_answer(seen[-1], 2)
    first = last["item"][0]
    opts = seen[1]["contained"][0]["item"]
    q1 = next(it for it in opts if it["linkId"] == first["linkId"])
    outcomes = []
    for k in range(5):  # every other answer to question 1: changes the path or keeps it
        qr = copy.deepcopy(last)
        qr["item"][0]["answer"] = [{"valueCoding": q1["answerOption"][k]["valueCoding"]}]
        r = post(fc, ph, qr)
        outcomes.append(r.status_code)
        if r.status_code == 422:
            assert _issue(r) == ("business-rule", "fhir-answers-changed")
            assert "would have" in r.get_json()["issue"][0]["diagnostics"]
    assert 422 in outcomes, "some other first answer must change the second question"
    assert 200 in outcomes  # the original answer at least


def test_removed_earlier_answer(fc, ph):
    seen = _mid_sitting(fc, ph, rounds=3)
    qr = with_answer(seen[-1], 0)
    del qr["item"][0]
    r = post(fc, ph, qr)
    assert r.status_code == 422 and _issue(r) == ("required", "fhir-answer-missing")


def test_state_of_another_questionnaire(fc, ph):
    seen = _mid_sitting(fc, ph, rounds=1)
    r = post(fc, ph, with_answer(seen[-1], 0), "bank.pain-intensity")
    assert r.status_code == 422 and _issue(r)[1] == "fhir-questionnaire-mismatch"


def test_bank_changed_since_the_sitting_started(fc, ph, fapp):
    import dataclasses
    seen = _mid_sitting(fc, ph, rounds=1)
    targets = fapp.extensions["cat_prom_fhir"].catalog.targets
    targets["battery.pain-core"] = dataclasses.replace(targets["battery.pain-core"], design_hash="sha256:other")
    r = post(fc, ph, with_answer(seen[-1], 0))
    assert r.status_code == 409 and _issue(r) == ("conflict", "bank-changed")


@pytest.mark.parametrize("body, status, code", [
    ({"resourceType": "Patient"}, 400, "fhir-invalid-resource"),
    ([1, 2], 400, "fhir-invalid-resource"),
    ({"resourceType": "QuestionnaireResponse"}, 400, "fhir-invalid-resource"),  # status is required
    ({"resourceType": "QuestionnaireResponse", "status": "in-progress", "bogus": 1}, 400, "fhir-invalid-resource"),
    ({"resourceType": "Parameters", "parameter": [{"name": "other", "valueString": "x"}]}, 400,
     "fhir-invalid-resource"),
    ({"resourceType": "QuestionnaireResponse", "status": "in-progress"}, 400, "fhir-invalid-resource"),  # which one?
    ({"resourceType": "QuestionnaireResponse", "status": "in-progress", "questionnaire": "#nope"}, 400,
     "fhir-invalid-resource"),
])
def test_malformed_requests(fc, ph, body, status, code):
    r = fc.post("/fhir/Questionnaire/$next-question", json=body, headers=ph, content_type=FHIR)
    assert r.status_code == status and _issue(r)[1] == code


def test_unknown_questionnaire_auth_and_media_type(fc, ph, fapp):
    r = post(fc, ph, start_body(), "bank.nope")
    assert r.status_code == 404 and _issue(r) == ("not-found", "questionnaire-not-found")
    r = post(fc, {}, start_body(), "bank.pain-intensity")
    assert r.status_code == 401 and _issue(r) == ("login", "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = post(fc, Keys(fapp)["clinician"], start_body(), "bank.pain-intensity")
    assert r.status_code == 403 and _issue(r) == ("forbidden", "forbidden")
    r = fc.post("/fhir/Questionnaire/$next-question", data="{not json", headers=ph, content_type=FHIR)
    assert r.status_code == 400 and _issue(r) == ("structure", "malformed-json")
    r = fc.post("/fhir/Questionnaire/$next-question", data="x", headers=ph, content_type="text/plain")
    assert r.status_code == 415 and _issue(r)[0] == "not-supported"
    r = fc.delete("/fhir/Questionnaire/$next-question", headers=ph)
    assert r.status_code == 405 and _issue(r)[0] == "not-supported"
    r = fc.get("/fhir/Nothing/here", headers=ph)
    assert r.status_code == 404 and _issue(r)[0] == "not-found"
    # the JSON API keeps problem+json
    assert fc.get("/v1/nothing", headers=ph).mimetype == "application/problem+json"


def test_declined_items_are_coded_with_data_absent_reason(fc, ph):
    seen, given = run_fhir(fc, ph, "battery.pain-core")
    declined = [it for it in seen[-1]["item"] if not it["linkId"].startswith("score/")
                and it["answer"][0]["valueCoding"]["system"].endswith("data-absent-reason")]
    assert len(declined) == sum(v is None for _, v in given) > 0
    assert all(declines(it["linkId"].split("/", 1)[1]) for it in declined)


def test_signing_key_from_secret_or_instance_file(tmp_path):
    from api.fhir.signing import Signer
    a = Signer.from_config({"CAT_PROM_SECRET_KEY": "pepper"}, str(tmp_path))
    b = Signer.from_config({"CAT_PROM_SECRET_KEY": "pepper"}, str(tmp_path))
    assert a.kid == b.kid and a.seed("n1") == b.seed("n1") != a.seed("n2")
    assert Signer.from_config({"CAT_PROM_SECRET_KEY": "other"}, str(tmp_path)).kid != a.kid
    f1 = Signer.from_config({}, str(tmp_path / "inst"))
    f2 = Signer.from_config({}, str(tmp_path / "inst"))  # a second worker reads the same file
    assert f1.kid == f2.kid
    assert oct((tmp_path / "inst" / "fhir-signing.key").stat().st_mode & 0o777) == "0o600"


def test_fhir_body_limit_is_its_own(fc, ph, fapp):
    # a whole sitting travels in each request: /fhir takes CAT_PROM_FHIR_MAX_BODY_BYTES, the JSON API keeps its limit
    seen, _ = run_fhir(fc, ph, "battery.pain-core")
    size = len(json.dumps(seen[-1]))
    assert fapp.config["CAT_PROM_MAX_BODY_BYTES"] < size < fapp.config["CAT_PROM_FHIR_MAX_BODY_BYTES"]
    big = json.dumps({"resourceType": "QuestionnaireResponse", "status": "in-progress",
                      "id": "x", "language": "en" + " " * (fapp.config["CAT_PROM_FHIR_MAX_BODY_BYTES"])})
    r = fc.post("/fhir/Questionnaire/$next-question", data=big, headers=ph, content_type=FHIR)
    assert r.status_code == 413 and _issue(r) == ("too-costly", "payload-too-large")


def test_questionnaire_read_and_search(fc, ph):
    r = fc.get("/fhir/Questionnaire/battery.pain-core", headers=ph)
    assert r.status_code == 200 and r.mimetype == FHIR
    q = r.get_json()
    assert q["code"][0] == {"system": "urn:cat-prom:fhir:battery", "code": "pain-core", "display": q["title"]}
    b = fc.get("/fhir/Questionnaire", query_string={"url": q["url"]}, headers=ph).get_json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["battery.pain-core"] and b["total"] == 1
    b = fc.get("/fhir/Questionnaire", query_string={"_id": "bank.pain-intensity,bank.nope"}, headers=ph).get_json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["bank.pain-intensity"]
    assert fc.get("/fhir/Questionnaire", headers={}).status_code == 401
    meta = fc.get("/fhir/metadata")
    assert meta.status_code == 200 and meta.get_json()["resourceType"] == "CapabilityStatement"


def test_a_licensed_bank_carries_its_own_codes(tmp_path):
    """Bank, item and answer codes from the bank file (here made-up LOINC-style codes, not real ones)."""
    from apibanks import make_bank
    from cat_prom.bank import ItemBank
    from fhirhelpers import SIGNING_KEY
    doc = make_bank("pain-intensity").to_dict()
    doc.pop("content_hash")
    doc["codes"] = [{"system": "http://loinc.org", "code": "99999-0", "display": "Example panel"}]
    for i, it in enumerate(doc["items"]):
        it["codes"] = [{"system": "http://loinc.org", "code": f"9{i:04d}-1"}]
        for k, o in enumerate(it["options"]):
            o["code"] = {"system": "http://loinc.org", "code": f"LA{9000 + k}-{k}"}
    folder = tmp_path / "banks"
    folder.mkdir()
    ItemBank.from_dict(doc).save(folder / "pain-intensity.json")
    app = make_app(folder, f"sqlite:///{tmp_path / 'c.sqlite'}", FHIR_SIGNING_KEY=SIGNING_KEY)
    try:
        c = app.test_client()
        ph = Keys(app)["patient-app"]
        pub = c.get("/fhir/Questionnaire/bank.pain-intensity", headers=ph).get_json()
        assert pub["code"][1] == {"system": "http://loinc.org", "code": "99999-0", "display": "Example panel"}
        qr = post(c, ph, start_body(), "bank.pain-intensity").get_json()
        q = current_question(qr)
        assert q["code"][1]["system"] == "http://loinc.org"
        opt = q["answerOption"][2]["valueCoding"]
        assert opt["system"] == "http://loinc.org" and opt["code"] == "LA9002-2" and opt["display"] == "Somewhat"
        assert opt["extension"][0]["valueDecimal"] == 3  # the response value
        nxt = post(c, ph, with_answer(qr, 2))
        assert nxt.status_code == 200
        assert nxt.get_json()["item"][0]["answer"][0]["valueCoding"]["code"] == "LA9002-2"
        # cat-prom's own code is not an option of a coded item
        bad = with_answer(qr, 2)
        bad["item"][0]["answer"][0]["valueCoding"] = {"system": "urn:cat-prom:fhir:bank:pain-intensity:item:"
                                                                + q["linkId"].split("/")[1], "code": "3"}
        r = post(c, ph, bad)
        assert r.status_code == 422 and _issue(r)[1] == "fhir-answer-not-an-option"
    finally:
        app.extensions["cat_prom"].store.dispose()


@pytest.mark.parametrize("accept, fmt, status", [
    (None, None, 200), ("*/*", None, 200), ("application/fhir+json", None, 200),
    ("application/fhir+json; fhirVersion=4.0", None, 200), ("application/json, text/plain", None, 200),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None, 200),
    ("application/fhir+xml", None, 406), ("application/fhir+json; fhirVersion=5.0", None, 406),
    ("application/fhir+json;q=0", None, 406), (None, "xml", 406), (None, "json", 200),
])
def test_json_and_r4_only(fc, ph, accept, fmt, status):
    headers = dict(ph, **({"Accept": accept} if accept else {}))
    r = fc.get("/fhir/Questionnaire/bank.pain-intensity", headers=headers,
               query_string={"_format": fmt} if fmt else None)
    assert r.status_code == status and r.mimetype == FHIR
    if status == 406:
        assert _issue(r) == ("not-supported", "not-acceptable")

"""A FHIR client as an independent program would be: it posts back exactly what it received plus one
answer per round (used by the FHIR tests and to generate the docs/fhir.md exchange)."""
from __future__ import annotations

import copy
import hashlib

FHIR = "application/fhir+json"
SIGNING_KEY = "test-fhir-signing-key"


def choose(item_id: str, n_options: int) -> int:
    """A fixed answer per item id (the same through FHIR and the JSON API): an option index."""
    return hashlib.sha256(item_id.encode()).digest()[0] % n_options


def declines(item_id: str) -> bool:
    return item_id.endswith("03")


def start_body(qid: str | None = None) -> dict:
    qr = {"resourceType": "QuestionnaireResponse", "status": "in-progress",
          "subject": {"reference": "Patient/p-fhir-1"}, "authored": "2026-11-26T10:00:00Z"}
    if qid:
        qr["contained"] = [{"resourceType": "Questionnaire", "id": "q", "status": "active",
                            "derivedFrom": [f"http://localhost/fhir/Questionnaire/{qid}"]}]
        qr["questionnaire"] = "#q"
    return {"resourceType": "Parameters", "parameter": [{"name": "questionnaire-response", "resource": qr}]}


def current_question(qr: dict) -> dict:
    cq = next(c for c in qr["contained"] if c["resourceType"] == "Questionnaire")
    return [it for it in cq["item"] if it["type"] == "choice"][-1]


def with_answer(qr: dict, option_index: int | None = None, *, declined: bool = False) -> dict:
    """``qr`` as received plus an answer to its newest question (option ``option_index``, or the
    data-absent-reason option when ``declined``)."""
    out = copy.deepcopy(qr)
    q = current_question(out)
    opts = q["answerOption"]
    coding = opts[-1]["valueCoding"] if declined else opts[option_index]["valueCoding"]
    out.setdefault("item", []).append({"linkId": q["linkId"], "text": q["text"], "answer": [{"valueCoding": coding}]})
    return out


def post(client, headers, body, qid: str | None = None):
    url = f"/fhir/Questionnaire/{qid}/$next-question" if qid else "/fhir/Questionnaire/$next-question"
    return client.post(url, json=body, headers=headers, content_type=FHIR)


def run_fhir(client, headers, qid: str, max_rounds: int = 200):
    """A whole sitting; returns (list of every QuestionnaireResponse received, [(item id, value or None)])."""
    r = post(client, headers, start_body(), qid)
    assert r.status_code == 200, r.get_json()
    seen = [r.get_json()]
    given = []
    while seen[-1]["status"] == "in-progress":
        q = current_question(seen[-1])
        item_id = q["linkId"].split("/", 1)[1]
        real = q["answerOption"][:-1]
        if declines(item_id):
            body = with_answer(seen[-1], declined=True)
            given.append((item_id, None))
        else:
            k = choose(item_id, len(real))
            body = with_answer(seen[-1], k)
            given.append((item_id, real[k]["valueCoding"]["extension"][0]["valueDecimal"]))
        r = post(client, headers, body)
        assert r.status_code == 200, r.get_json()
        seen.append(r.get_json())
        assert len(seen) < max_rounds
    return seen, given


def scores(qr: dict) -> dict:
    """{bank id: {code: value or None}} from a completed QuestionnaireResponse's score groups."""
    out = {}
    for g in qr["item"]:
        if g["linkId"].startswith("score/"):
            bank = g["linkId"].split("/", 1)[1]
            out[bank] = {it["linkId"].rsplit("/", 1)[1]: (next(iter(it["answer"][0].values())) if it.get("answer")
                                                          else None) for it in g["item"]}
    return out

"""docs/fhir.md stays true: its exchange is what the service produces, and the other docs point to it."""
from __future__ import annotations

from pathlib import Path

from fhirdoc import current_doc_section, generate

ROOT = Path(__file__).resolve().parents[2]


def test_the_exchange_in_the_docs_is_what_the_service_produces():
    produced = generate()
    assert current_doc_section() == produced, "regenerate: python tests/api/fhirdoc.py --write"
    for needle in ("$next-question", "curl -s -X POST", '"status": "completed"', "OperationOutcome",
                   "fhir-answers-changed", "Observation"):
        assert needle in produced


def test_readme_and_openapi_mention_fhir(client):
    assert "docs/fhir.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    spec = client.get("/v1/openapi.json").get_json()
    assert "/fhir" in spec["info"]["description"] and "docs/fhir.md" in spec["info"]["description"]


def test_documented_routes_exist(client):
    text = (ROOT / "docs" / "fhir.md").read_text(encoding="utf-8")
    rules = {r.rule for r in client.application.url_map.iter_rules() if r.rule.startswith("/fhir")}
    for rule in ("/fhir/metadata", "/fhir/Questionnaire", "/fhir/Questionnaire/<string:qid>",
                 "/fhir/Questionnaire/$next-question", "/fhir/Questionnaire/<string:qid>/$next-question",
                 "/fhir/QuestionnaireResponse", "/fhir/QuestionnaireResponse/<string:sid>", "/fhir/Observation",
                 "/fhir/Observation/<string:oid>"):
        assert rule in rules
    for shown in ("GET /fhir/metadata", "POST /fhir/Questionnaire/$next-question",
                  "POST /fhir/QuestionnaireResponse", "GET /fhir/Observation?subject="):
        assert shown in text

"""A whole battery through $next-question over real HTTP (`cat-prom serve`, two workers) as an
independent client: it parses each reply from the bytes received and posts exactly that back with
one answer added. Consecutive requests land on either worker: nothing but the response carries the
sitting. The final scores equal the JSON API's for the same answers (over the same server) to 1e-9."""
from __future__ import annotations

import http.client
import json

import pytest

from apiserver import Server, request
from fhirhelpers import choose, declines, scores

from api import keys as keys_mod
from api.store import SessionStore

pytestmark = pytest.mark.slow


def _post_fhir(base, path, raw: bytes, headers):
    conn = http.client.HTTPConnection(*base, timeout=30)
    try:
        conn.request("POST", path, body=raw, headers={**headers, "Content-Type": "application/fhir+json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def test_battery_over_http_matches_the_json_api(tmp_path, banks_dir):
    url = f"sqlite:///{tmp_path / 'http.sqlite'}"
    db = SessionStore(url)
    db.migrate()
    h = {"Authorization": "Bearer " + keys_mod.create_key(db, role="patient-app", name="t")["key"]}
    db.dispose()
    srv = Server(db_url=url, banks_dir=banks_dir, workers=2, log_path=tmp_path / "s.log",
                 extra_env={"CAT_PROM_FHIR_SIGNING_KEY": "http-test-key"}).wait_ready()
    try:
        start = {"resourceType": "Parameters", "parameter": [{"name": "questionnaire-response", "resource": {
            "resourceType": "QuestionnaireResponse", "status": "in-progress",
            "subject": {"reference": "Patient/http-1"}}}]}
        status, ctype, raw = _post_fhir(srv.base, "/fhir/Questionnaire/battery.pain-core/$next-question",
                                        json.dumps(start).encode(), h)
        assert status == 200 and ctype.startswith("application/fhir+json"), raw[:300]
        given = []
        while True:
            qr = json.loads(raw)
            if qr["status"] == "completed":
                break
            assert qr["status"] == "in-progress"
            q = [it for it in qr["contained"][0]["item"] if it["type"] == "choice"][-1]
            item_id = q["linkId"].split("/", 1)[1]
            options = q["answerOption"]
            if declines(item_id):
                opt, value = options[-1], None
            else:
                k = choose(item_id, len(options) - 1)
                opt, value = options[k], options[k]["valueCoding"]["extension"][0]["valueDecimal"]
            qr.setdefault("item", []).append({"linkId": q["linkId"], "text": q["text"],
                                              "answer": [{"valueCoding": opt["valueCoding"]}]})
            given.append((item_id, value))
            status, ctype, raw = _post_fhir(srv.base, "/fhir/Questionnaire/$next-question", json.dumps(qr).encode(), h)
            assert status == 200, raw[:500]
            assert len(given) < 100
        status, v = request(srv.base, "POST", "/v1/sessions", {"battery": "pain-core", "patient": "http-2"}, h)
        assert status == 201
        for item_id, value in given:
            q = v["question"]
            assert q["item_id"] == item_id
            body = {"seq": q["seq"], "item_id": item_id, **({"declined": True} if value is None else {"value": value})}
            status, v = request(srv.base, "POST", f"/v1/sessions/{v['id']}/responses", body, h)
            assert status == 200, v
        assert v["status"] == "finished"
        fhir = scores(qr)
        for res in v["results"]:
            s = fhir[res["bank_id"]]
            for code, key in (("theta", "theta"), ("se", "se"), ("t-score", "t_score")):
                assert abs(s[code] - res[key]) <= 1e-9  # same engine, same answers
        # a tampered response over HTTP: an OperationOutcome
        qr["item"][0]["answer"][0]["valueCoding"]["code"] = "99"
        status, ctype, raw = _post_fhir(srv.base, "/fhir/Questionnaire/$next-question", json.dumps(qr).encode(), h)
        assert status == 422 and ctype.startswith("application/fhir+json")
        assert json.loads(raw)["resourceType"] == "OperationOutcome"
    finally:
        srv.stop()

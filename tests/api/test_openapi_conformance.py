"""The service against its own OpenAPI document: regressions for what schemathesis found.

Each test pins one finding of ``st run http://127.0.0.1:8123/v1/openapi.json --checks all``
(schemathesis 4.32, every role's key): an error media type the document got wrong, request
rules the document did not state, and inputs the schemas accepted though the document (and
the JSON types) say they are invalid.
"""
from __future__ import annotations

import socket

import jsonschema
import pytest

PROBLEM = "application/problem+json"


def _spec(client):
    return client.get("/v1/openapi.json").json


def _json_schema(spec, name):
    """A component schema as plain JSON Schema: refs inlined, OAS 3.0 `nullable` as a type union."""
    def conv(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return conv(spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            out = {k: conv(v) for k, v in node.items() if k not in ("nullable", "example")}
            if node.get("nullable") and "type" in node:
                out["type"] = [node["type"], "null"]
            return out
        if isinstance(node, list):
            return [conv(v) for v in node]
        return node
    return conv(spec["components"]["schemas"][name])


def _start(client, headers, patient="p-st"):
    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": patient}, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


# ------------------------------------------------------------------ ST105: error media type
def test_error_responses_are_documented_as_problem_json(client):
    """Every error response in the document says application/problem+json, which is what is sent
    (flask-smorest's defaults said application/json)."""
    spec = _spec(client)
    comps = spec["components"]["responses"]
    for name, resp in comps.items():
        if "content" in resp:
            assert list(resp["content"]) == [PROBLEM], name
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            for status, resp in op["responses"].items():
                if status.startswith("2") or (path, status) == ("/readyz", "503"):
                    continue  # /readyz answers 503 with its probe report (application/json), as documented
                if "$ref" in resp:
                    resp = comps[resp["$ref"].rsplit("/", 1)[1]]
                assert set(resp.get("content", {PROBLEM: 0})) == {PROBLEM}, (method, path, status)


def test_401_is_problem_json_as_documented(client):
    r = client.get("/v1/banks")
    assert r.status_code == 401 and r.mimetype == PROBLEM


# ------------------------------------------------------------------ ST108: problem extension members
def test_problem_schema_allows_extension_members(client, patient_h):
    """RFC 9457 §3.2 extension members (`seq`, `next_seq`, `fields`) were rejected by the documented
    Problem schema (additionalProperties: false)."""
    spec = _spec(client)
    schema = _json_schema(spec, "Problem")
    assert schema.get("additionalProperties") is not False
    v = _start(client, patient_h)
    q = v["question"]
    ok = client.post(f"/v1/sessions/{v['id']}/responses", headers=patient_h,
                     json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]})
    assert ok.status_code == 200
    conflict = client.post(f"/v1/sessions/{v['id']}/responses", headers=patient_h,
                           json={"seq": q["seq"], "item_id": q["item_id"], "declined": True})
    assert conflict.status_code == 409 and conflict.mimetype == PROBLEM
    assert {"seq", "next_seq"} <= set(conflict.json)
    jsonschema.validate(conflict.json, schema)
    out_of_range = client.post(f"/v1/sessions/{v['id']}/responses", headers=patient_h,
                               json={"seq": 2, "item_id": ok.json["question"]["item_id"], "value": 99})
    assert out_of_range.status_code == 422 and "fields" in out_of_range.json
    jsonschema.validate(out_of_range.json, schema)


# ------------------------------------------------------------------ ST202: rules the document did not state
def test_create_session_documents_banks_xor_battery(client, patient_h):
    spec = _spec(client)
    schema = _json_schema(spec, "CreateSession")
    both = {"banks": ["pain-interference"], "battery": "pain-core", "patient": "p-1"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(both, schema)
    with pytest.raises(jsonschema.ValidationError):  # a bank only once
        jsonschema.validate({"banks": ["pain-interference"] * 2, "patient": "p-1"}, schema)
    jsonschema.validate({"battery": "pain-core", "patient": "p-1"}, schema)
    assert client.post("/v1/sessions", json=both, headers=patient_h).status_code == 422


def test_answer_documents_value_types_and_value_xor_declined(client):
    schema = _json_schema(_spec(client), "Answer")
    for bad in ({"seq": 1, "item_id": "A", "value": None},
                {"seq": 1, "item_id": "A", "value": 1.5},
                {"seq": 1, "item_id": "A", "value": True},
                {"seq": 1, "item_id": "A"},
                {"seq": 1, "item_id": "A", "declined": False},
                {"seq": 1, "item_id": "A", "declined": True, "value": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    for good in ({"seq": 1, "item_id": "A", "value": 2}, {"seq": 1, "item_id": "A", "value": "yes"},
                 {"seq": 1, "item_id": "A", "value": 2, "declined": False},
                 {"seq": 1, "item_id": "A", "declined": True}):
        jsonschema.validate(good, schema)


def test_patient_ref_path_parameter_documents_its_pattern(client, keys):
    spec = _spec(client)
    params = spec["paths"]["/v1/patients/{patient_ref}/results"]["parameters"]
    (ref,) = [p for p in params if p["name"] == "patient_ref"]
    assert ref["schema"]["pattern"].startswith("^") and ref["required"] is True
    r = client.get("/v1/patients/%C2%9B%C3%8E/results", headers=keys["clinician"])
    assert r.status_code == 422 and r.mimetype == PROBLEM


# ------------------------------------------------------------------ ST201: invalid input accepted
@pytest.mark.parametrize("seed", [2.5, 1e-42, "5", True])
def test_seed_must_be_a_json_integer(client, patient_h, seed):
    """`seed` 2.5 used to be truncated to 2 (and "5" taken as 5) and the session created."""
    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-1", "seed": seed}, headers=patient_h)
    assert r.status_code == 422 and "seed" in r.json["errors"]


def test_integral_float_seed_is_refused(client, patient_h):
    """Issue 7: `7.0` where an integer is documented is 422 (it was accepted as 7 before)."""
    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-1", "seed": 7.0}, headers=patient_h)
    assert r.status_code == 422 and "seed" in r.json["errors"]


@pytest.mark.parametrize("n", [2.5, "20"])
def test_simulation_n_must_be_a_json_integer(client, keys, n):
    r = client.post("/v1/simulations", json={"bank": "pain-interference", "n": n}, headers=keys["researcher"])
    assert r.status_code == 422 and "n" in r.json["errors"]


@pytest.mark.parametrize("declined", [0, 1, "true"])
def test_declined_must_be_a_json_boolean(client, patient_h, declined):
    """`"declined": 0` was taken as false and `1` as true (0 == False in Python)."""
    v = _start(client, patient_h)
    q = v["question"]
    body = {"seq": q["seq"], "item_id": q["item_id"], "declined": declined}
    if declined == 0:
        body["value"] = q["options"][0]["value"]
    r = client.post(f"/v1/sessions/{v['id']}/responses", json=body, headers=patient_h)
    assert r.status_code == 422 and "declined" in r.json["errors"]


def test_patient_ref_with_trailing_newline_is_rejected(client, patient_h, keys):
    """`re.match` with `$` accepted "p-1\\n"."""
    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-1\n"}, headers=patient_h)
    assert r.status_code == 422 and "patient" in r.json["errors"]
    r = client.post("/v1/sessions", json={"banks": ["pain-interference\n"], "patient": "p-1"}, headers=patient_h)
    assert r.status_code == 422
    r = client.get("/v1/patients/p-1%0A/results", headers=keys["clinician"])
    assert r.status_code == 422 and r.mimetype == PROBLEM


def test_repeated_scalar_query_parameter_is_rejected(client, keys):
    """`?limit=1&limit=5000` used to mean limit=1 (webargs takes the first value)."""
    h = keys["clinician"]
    assert client.get("/v1/patients/p-1/results?limit=1", headers=h).status_code == 200
    r = client.get("/v1/patients/p-1/results?limit=1&limit=5000", headers=h)
    assert r.status_code == 422 and r.mimetype == PROBLEM and "limit" in r.json["errors"]


# ------------------------------------------------------------------ gunicorn's own rejections
@pytest.mark.parametrize("status,reason,code", [(414, "URI Too Long", "uri-too-long"),
                                               (431, "Request Header Fields Too Large", "header-fields-too-large"),
                                               (400, "Bad Request", "bad-request")])
def test_server_level_errors_are_problem_json(status, reason, code):
    """A request line over 4094 bytes got gunicorn's HTML 414 page; `cat-prom serve` now installs
    api.problems.write_server_error in place of gunicorn.util.write_error."""
    from api.problems import write_server_error

    a, b = socket.socketpair()
    try:
        write_server_error(a, status, reason, "Request Line is too large (8192 > 4094) /v1/patients/p-SECRET")
        a.close()
        raw = b"".join(iter(lambda: b.recv(65536), b""))
    finally:
        b.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} {reason}\r\n".encode())
    assert b"Content-Type: application/problem+json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    import json
    doc = json.loads(body)
    assert doc["type"] == f"urn:cat-prom:problem:{code}" and doc["status"] == status and doc["detail"]
    assert b"p-SECRET" not in raw


# ------------------------------------------------------------------ 2xx bodies match the document
def _response_schema(spec, path, method, status):
    resp = spec["paths"][path][method]["responses"][str(status)]
    content = resp.get("content")
    if not content:
        return None
    (media, body), = content.items()
    assert media == "application/json"
    spec = dict(spec, components=dict(spec["components"], schemas=dict(spec["components"]["schemas"],
                                                                     _x=body["schema"])))
    return _json_schema(spec, "_x")


def test_success_bodies_match_the_document(client, keys, patient_h):
    """Schemathesis rarely gets a session to the end; this drives one through every route and checks
    each 2xx body against the documented schema (finished results, patient history, keys, ...)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from apihelpers import run_session

    spec = _spec(client)
    first, final, _ = run_session(client, patient_h, {"battery": "pain-core", "patient": "p-conf"})
    jsonschema.validate(first, _response_schema(spec, "/v1/sessions", "post", 201))
    jsonschema.validate(final, _response_schema(spec, "/v1/sessions/{session_id}/responses", "post", 200))
    assert final["status"] == "finished"
    for role in ("patient-app", "clinician"):
        got = client.get(f"/v1/sessions/{final['id']}", headers=keys[role])
        assert got.status_code == 200
        jsonschema.validate(got.json, _response_schema(spec, "/v1/sessions/{session_id}", "get", 200))
    hist = client.get("/v1/patients/p-conf/results", headers=keys["clinician"])
    jsonschema.validate(hist.json, _response_schema(spec, "/v1/patients/{patient_ref}/results", "get", 200))
    assert len(hist.json["sessions"]) == 1
    banks = client.get("/v1/banks", headers=patient_h)
    jsonschema.validate(banks.json, _response_schema(spec, "/v1/banks", "get", 200))
    made = client.post("/v1/keys", json={"role": "clinician", "name": "conf"}, headers=keys["admin"])
    assert made.status_code == 201
    jsonschema.validate(made.json, _response_schema(spec, "/v1/keys", "post", 201))
    listed = client.get("/v1/keys", headers=keys["admin"])
    jsonschema.validate(listed.json, _response_schema(spec, "/v1/keys", "get", 200))
    gone = client.delete(f"/v1/keys/{made.json['id']}", headers=keys["admin"])
    jsonschema.validate(gone.json, _response_schema(spec, "/v1/keys/{key_id}", "delete", 200))
    v = _start(client, patient_h, "p-abandon")
    assert client.delete(f"/v1/sessions/{v['id']}", headers=patient_h).status_code == 204
    got = client.get(f"/v1/sessions/{v['id']}", headers=patient_h)
    jsonschema.validate(got.json, _response_schema(spec, "/v1/sessions/{session_id}", "get", 200))

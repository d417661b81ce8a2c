"""Every failure is RFC 9457 problem+json; no input produces a 500."""
from __future__ import annotations

import json

from apihelpers import make_app

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROBLEM = "application/problem+json"


def assert_problem(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.mimetype == PROBLEM
    body = r.json
    assert body["status"] == status
    assert body["type"].startswith("urn:cat-prom:problem:")
    assert body["title"] and body["detail"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    if code:
        assert body["type"] == "urn:cat-prom:problem:" + code
    return body


def test_404_unknown_route(client, patient_h):
    assert_problem(client.get("/v2/whatever"), 404, "not-found")
    assert_problem(client.get("/v1/sessions/x/nothing", headers=patient_h), 404)


def test_405_with_allow_header(client, patient_h):
    r = client.put("/v1/sessions", headers=patient_h, json={})
    assert_problem(r, 405, "method-not-allowed")
    assert "POST" in r.headers["Allow"]
    assert_problem(client.delete("/v1/banks", headers=patient_h), 405)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/xml"])
def test_415_non_json(client, patient_h, ctype):
    kwargs = {"data": '{"battery": "pain-core", "patient": "p"}', "headers": patient_h}
    if ctype:
        kwargs["content_type"] = ctype
    assert_problem(client.post("/v1/sessions", **kwargs), 415, "unsupported-media-type")


def test_json_suffix_media_type_and_charset(client, patient_h):
    body = json.dumps({"battery": "pain-core", "patient": "p"})
    r = client.post("/v1/sessions", data=body, headers=patient_h, content_type="application/vnd.api+json")
    assert r.status_code == 201
    r = client.post("/v1/sessions", data=body, headers=patient_h, content_type="application/json; charset=utf-8")
    assert r.status_code == 201
    r = client.post("/v1/sessions", data=body.encode("utf-16"), headers=patient_h,
                    content_type="application/json; charset=utf-16")
    assert_problem(r, 415)


@pytest.mark.parametrize("raw", [b"{", b"", b"   ", b'{"a": NaN}', b'{"a": Infinity}', b"[" * 50000 + b"]" * 50000,
                                 b'{"a": 1' + b"0" * 5000 + b"}", b"\xff\xfe{}", b"{'a': 1}", b'{"a":1}{"b":2}'])
def test_400_malformed_json(client, patient_h, raw):
    r = client.post("/v1/sessions", data=raw, headers=patient_h, content_type="application/json")
    if len(raw) > 65536:
        assert_problem(r, 413, "payload-too-large")
    else:
        assert_problem(r, 400, "malformed-json")


def test_deep_nesting_within_size_limit(client, patient_h):
    raw = b"[" * 30000 + b"]" * 30000
    assert_problem(client.post("/v1/sessions", data=raw, headers=patient_h, content_type="application/json"), 400)


def test_413_large_body(client, patient_h):
    big = json.dumps({"battery": "pain-core", "patient": "p", "design": {"x": "y" * 70000}})
    assert_problem(client.post("/v1/sessions", data=big, headers=patient_h, content_type="application/json"),
                   413, "payload-too-large")


@pytest.mark.parametrize("body, fields", [
    ([], ["_schema"]), ("x", ["_schema"]), (None, None), (42, ["_schema"]),
    ({}, ["patient"]),
    ({"patient": "p"}, ["banks"]),
    ({"patient": "p", "banks": ["pain-intensity"], "battery": "pain-core"}, ["banks"]),
    ({"patient": "has space", "battery": "pain-core"}, ["patient"]),
    ({"patient": "p", "banks": []}, ["banks"]),
    ({"patient": "p", "banks": ["pain-intensity", "pain-intensity"]}, ["banks"]),
    ({"patient": "p", "battery": "pain-core", "unknown": 1}, ["unknown"]),
    ({"patient": "p", "battery": "pain-core", "seed": -1}, ["seed"]),
    ({"patient": "p", "battery": "pain-core", "design": []}, ["design"]),
])
def test_422_validation_names_fields(client, patient_h, body, fields):
    r = client.post("/v1/sessions", data=json.dumps(body), headers=patient_h, content_type="application/json")
    if body is None:  # JSON null is valid JSON but not an object
        assert r.status_code == 422
        return
    b = assert_problem(r, 422, "validation-error")
    for f in fields:
        assert f in b["errors"], b


@pytest.mark.parametrize("body, field", [
    ({"item_id": "X", "value": 1}, "seq"),
    ({"seq": 1, "value": 1}, "item_id"),
    ({"seq": 1, "item_id": "X"}, "value"),
    ({"seq": 1, "item_id": "X", "value": 1, "declined": True}, "value"),
    ({"seq": "1", "item_id": "X", "value": 1}, "seq"),
    ({"seq": 1.5, "item_id": "X", "value": 1}, "seq"),
    ({"seq": 0, "item_id": "X", "value": 1}, "seq"),
    ({"seq": 1, "item_id": "X", "value": True}, "value"),
    ({"seq": 1, "item_id": "X", "value": [1]}, "value"),
    ({"seq": 1, "item_id": "X", "value": 1.5}, "value"),
    ({"seq": 1, "item_id": "X", "declined": "yes"}, "declined"),
    ({"seq": 1, "item_id": "", "value": 1}, "item_id"),
])
def test_422_answer_validation(client, patient_h, body, field):
    v = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p"}, headers=patient_h).json
    r = client.post(f"/v1/sessions/{v['id']}/responses", json=body, headers=patient_h)
    b = assert_problem(r, 422, "validation-error")
    assert field in b["errors"], b


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["pain-core", "pain-intensity", "PINT01", "p-1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["banks", "battery", "patient", "design", "designs", "seed", "seq", "item_id", "value",
                         "declined", "max_items", "selection", "prior", "exposure", "role", "name"])
        | st.text(max_size=8), children, max_size=6),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, banks_dir):
    from apihelpers import Keys, make_app
    d = tmp_path_factory.mktemp("fuzz")
    app = make_app(banks_dir, f"sqlite:///{d / 'fuzz.sqlite'}")
    k = Keys(app)
    env = {"app": app, "client": app.test_client(), "patient": k["patient-app"], "admin": k["admin"],
           "clinician": k["clinician"], "researcher": k["researcher"]}
    v = env["client"].post("/v1/sessions", json={"battery": "pain-core", "patient": "f"},
                           headers=env["patient"]).json
    env["sid"] = v["id"]
    yield env
    app.extensions["cat_prom"].store.dispose()


def _check(r, method="POST"):
    assert r.status_code < 500, (r.status_code, r.data[:500])
    if r.status_code >= 400 and method != "HEAD":
        assert r.mimetype == PROBLEM
        assert r.json["type"].startswith("urn:cat-prom:problem:")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=json_values, target=st.sampled_from(["create", "answer", "keys"]))
def test_fuzz_json_bodies_never_500(fuzz_env, body, target):
    c = fuzz_env["client"]
    if target == "create":
        if isinstance(body, dict):
            body.setdefault("patient", "p")
        r = c.post("/v1/sessions", data=json.dumps(body), headers=fuzz_env["patient"],
                   content_type="application/json")
    elif target == "answer":
        r = c.post(f"/v1/sessions/{fuzz_env['sid']}/responses", data=json.dumps(body),
                   headers=fuzz_env["patient"], content_type="application/json")
    else:
        r = c.post("/v1/keys", data=json.dumps(body), headers=fuzz_env["admin"], content_type="application/json")
    _check(r)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(raw=st.binary(max_size=200), ctype=st.sampled_from(["application/json", "text/plain", "", "application/+json",
                                                           "application/json; charset=latin-1"]),
       method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
       path=st.sampled_from(["/v1/sessions", "/v1/sessions/{sid}", "/v1/sessions/{sid}/responses", "/v1/banks",
                             "/v1/banks/pain-intensity", "/v1/banks/%00", "/v1/patients/%ff/results",
                             "/v1/patients/p/results?limit=x", "/v1/keys", "/v1/keys/x", "/healthz", "/v1/simulations",
                             "/v1/sessions/%F0%9F%92%A9", "/v1/patients/" + "a" * 300 + "/results"]),
       role=st.sampled_from(["patient", "admin", "clinician", "researcher", None]))
def test_fuzz_raw_requests_never_500(fuzz_env, raw, ctype, method, path, role):
    c = fuzz_env["client"]
    headers = dict(fuzz_env[role]) if role else {}
    r = c.open(path.replace("{sid}", fuzz_env["sid"]), method=method, data=raw, headers=headers,
               content_type=ctype or None)
    _check(r, method)


def test_unexpected_exception_is_500_problem_without_patient_data(app, client, patient_h, monkeypatch, caplog):
    svc = app.extensions["cat_prom"].sessions

    def boom(*a, **k):
        raise RuntimeError("patient said: my secret answer")

    monkeypatch.setattr(svc, "get", boom)
    with caplog.at_level("ERROR", logger="cat_prom"):
        r = client.get("/v1/sessions/abc", headers=patient_h)
    b = assert_problem(r, 500, "internal-error")
    assert "secret" not in r.get_data(as_text=True)
    text = "\n".join(rec.getMessage() + str(rec.exc_info and rec.exc_info[1]) for rec in caplog.records)
    assert b["request_id"] in text
    assert "secret answer" not in text


def test_database_down_is_503(app, client, patient_h, monkeypatch):
    import sqlalchemy.exc

    def down(*a, **k):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(app.extensions["cat_prom"].sessions, "get", down)
    r = client.get("/v1/sessions/abc", headers=patient_h)
    assert_problem(r, 503, "service-unavailable")
    assert r.headers["Retry-After"] == "1"


def test_database_error_on_the_answer_route_is_503(app, client, patient_h, monkeypatch):
    """A driver error on the answer route's session read maps to 503, and the pooled connection survives."""
    import sqlalchemy as sa

    import api.store.session_queries

    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p-db"}, headers=patient_h)
    assert r.status_code == 201
    q = r.json["question"]
    app.extensions["cat_prom"].sessions.cache.clear()  # a cached sitting is answered without this read
    monkeypatch.setattr(api.store.session_queries, "_SEL_SESSION",
                        sa.text("SELECT * FROM no_such_table WHERE id = :p_sid AND tenant = :p_tenant"))
    r2 = client.post(f"/v1/sessions/{r.json['id']}/responses", headers=patient_h,
                     json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]})
    assert_problem(r2, 503, "service-unavailable")
    monkeypatch.undo()
    r3 = client.post(f"/v1/sessions/{r.json['id']}/responses", headers=patient_h,
                     json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]})
    assert r3.status_code == 200, r3.json  # the pooled connection is still good


def test_access_log_has_route_not_patient_ref(client, keys, caplog):
    with caplog.at_level("INFO", logger="cat_prom.api.access"):
        client.get("/v1/patients/MRN-SECRET-123/results", headers=keys["clinician"])
    lines = [r.getMessage() for r in caplog.records if r.name == "cat_prom.api.access"]
    assert lines and "patient_ref>" in lines[-1]
    assert "MRN-SECRET-123" not in "\n".join(lines)


_num = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                 st.sampled_from([0, 1e-300, 1e300, -1e300, 0.5, 2, 12]))
designs = st.fixed_dictionaries({}, optional={
    "estimator": st.sampled_from(["eap", "map", "ml", "wle"]),
    "selection": st.sampled_from(["mfi", "mpwi", "kl", "mepv", "random"]),
    "start": st.sampled_from(["auto", "bank", "max_info"]),
    "min_items": st.integers(0, 30), "max_items": st.integers(1, 40),
    "se_target": st.one_of(st.none(), _num), "se_change": st.one_of(st.none(), _num),
    "classification": st.one_of(st.none(), st.fixed_dictionaries({"threshold_t": _num}, optional={"confidence": _num})),
    "screen_stop": st.booleans(),
    "prior": st.fixed_dictionaries({}, optional={"mean": _num, "sd": _num}),
    "exposure": st.one_of(st.just({"method": "none"}), st.just({"method": "sympson_hetter"}),
                          st.fixed_dictionaries({"method": st.just("randomesque"), "k": st.integers(1, 50)})),
    "exclude_items": st.lists(st.sampled_from(["PINT01", "PINT02", "PF01", "X"]), max_size=3),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(design=designs, values=st.lists(st.integers(1, 5), min_size=40, max_size=40))
def test_fuzz_designs_and_answers_never_500(fuzz_env, design, values):
    """Any design a client may send, then any answers: 201/422 at creation, 200 for each answer."""
    c, h = fuzz_env["client"], fuzz_env["patient"]
    r = c.post("/v1/sessions", json={"banks": ["pain-intensity", "physical-function"], "patient": "f",
                                     "design": design}, headers=h)
    _check(r)
    if r.status_code != 201:
        return
    v, i = r.json, 0
    while v["status"] == "in_progress" and i < len(values):
        q = v["question"]
        r = c.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                   json={"seq": q["seq"], "item_id": q["item_id"], "value": values[i]})
        assert r.status_code == 200, r.json
        v, i = r.json, i + 1


def _engine_error_classes():
    import importlib
    import pkgutil

    import cat_prom
    from cat_prom.errors import CatPromError

    for m in pkgutil.walk_packages(cat_prom.__path__, "cat_prom."):  # every module: subclasses anywhere count
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
    out, todo = [], [CatPromError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_engine_error_code_maps_to_a_deliberate_problem(tmp_path, banks_dir):
    """Each CatPromError subclass (any module of cat_prom) has its code in the ONE mapping, to a
    problem type that exists, and the app answers it with that type and a 4xx status."""
    from api.problems import ENGINE_PROBLEMS, PROBLEMS

    classes = _engine_error_classes()
    codes = {cls.code for cls in classes}
    assert {"invalid-bank", "invalid-battery", "calibration-error", "invalid-data"} <= codes
    assert codes == set(ENGINE_PROBLEMS), "map every engine error code, and only those, in api/problems.py"
    assert set(ENGINE_PROBLEMS.values()) <= set(PROBLEMS)
    assert ENGINE_PROBLEMS["invalid-bank"] != "invalid-response"
    assert ENGINE_PROBLEMS["calibration-error"] != "invalid-response"
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'e.sqlite'}")
    raised = {}

    @app.route("/test-raise/<name>")
    def _raise(name):
        raise raised[name]("what was wrong, and how to fix it", item_id="X1")

    client = app.test_client()
    for cls in classes:
        raised[cls.__name__] = cls
        r = client.get(f"/test-raise/{cls.__name__}")
        assert r.json["type"] == "urn:cat-prom:problem:" + ENGINE_PROBLEMS[cls.code], cls
        assert 400 <= r.status_code < 500 and r.status_code == PROBLEMS[ENGINE_PROBLEMS[cls.code]][0], cls
        assert r.json["fields"] == {"item_id": "X1"} and r.json["detail"].startswith("what was wrong")
    app.extensions["cat_prom"].store.dispose()


@pytest.mark.parametrize("raw", [b'{"battery": "pain-core", "patient": "p", "patient": "q"}',
                                 b'{"battery": "pain-core", "patient": "p", "design": {"max_items": 3, "max_items": 9}}'])
def test_duplicate_keys_are_400(client, patient_h, raw):
    """{"a": 1, "a": 2} would silently mean the last value; the body is refused, naming the key."""
    r = client.post("/v1/sessions", data=raw, headers=patient_h, content_type="application/json")
    b = assert_problem(r, 400, "malformed-json")
    assert "duplicate key" in b["detail"]


@pytest.mark.parametrize("field, bad", [("seq", 1.0), ("seq", True), ("value", 3.0), ("value", False)])
def test_integers_are_json_integers(client, patient_h, field, bad):
    """`seq: 1.0` (or `true`) where an integer is documented is 422, like `2.5` and `"5"`."""
    v = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "p"}, headers=patient_h).json
    q = v["question"]
    body = {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]}
    body[field] = bad
    r = client.post(f"/v1/sessions/{v['id']}/responses", json=body, headers=patient_h)
    assert_problem(r, 422, "validation-error")
    assert field in r.json["errors"]

"""No input makes /fhir answer 500 or problem+json: random bodies, random mutations of a valid
QuestionnaireResponse, random bytes on every /fhir route; and random answer sequences finish with the
scores the engine gives for the same answers."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apihelpers import Keys, make_app
from fhirhelpers import FHIR, SIGNING_KEY, current_question, post, scores, start_body, with_answer

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=12), ch, max_size=4),
                           max_leaves=12)


@pytest.fixture(scope="module")
def env(tmp_path_factory, banks_dir):
    d = tmp_path_factory.mktemp("fhirfuzz")
    app = make_app(banks_dir, f"sqlite:///{d / 'z.sqlite'}", FHIR_SIGNING_KEY=SIGNING_KEY)
    c = app.test_client()
    k = Keys(app)
    ph = k["patient-app"]
    qr = post(c, ph, start_body(), "battery.pain-core").get_json()
    for _ in range(3):
        qr = post(c, ph, with_answer(qr, 2)).get_json()
    yield {"app": app, "client": c, "patient": ph, "clinician": k["clinician"], "qr": qr}
    app.extensions["cat_prom"].store.dispose()


def _check(r, method="POST"):
    assert r.status_code < 500, (r.status_code, r.data[:500])
    if r.status_code >= 400 and method != "HEAD":
        assert r.mimetype == FHIR, (r.status_code, r.mimetype)
        assert r.get_json()["resourceType"] == "OperationOutcome"


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data(), value=json_values, delete=st.booleans())
def test_mutated_questionnaire_response_never_500(env, data, value, delete):
    qr = with_answer(env["qr"], 1)
    paths = [p for p in _paths(qr) if p]
    path = data.draw(st.sampled_from(paths))
    body = copy.deepcopy(qr)
    node = body
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    _check(post(env["client"], env["patient"], body))


@FUZZ
@given(body=json_values, wrap=st.booleans())
def test_random_bodies_never_500(env, body, wrap):
    if wrap:
        body = {"resourceType": "Parameters", "parameter": [{"name": "questionnaire-response", "resource": body}]}
    r = env["client"].post("/fhir/Questionnaire/$next-question", data=json.dumps(body), headers=env["patient"],
                           content_type=FHIR)
    _check(r)
    r = env["client"].post("/fhir/QuestionnaireResponse", data=json.dumps(body), headers=env["patient"],
                           content_type=FHIR)
    _check(r)


@FUZZ
@given(raw=st.binary(max_size=200), ctype=st.sampled_from([FHIR, "application/json", "text/plain", ""]),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
       path=st.sampled_from(["/fhir", "/fhir/metadata", "/fhir/Questionnaire", "/fhir/Questionnaire/bank.pain-intensity",
                             "/fhir/Questionnaire/%00", "/fhir/Questionnaire/$next-question",
                             "/fhir/Questionnaire/x/$next-question", "/fhir/QuestionnaireResponse",
                             "/fhir/QuestionnaireResponse/%F0%9F%92%A9", "/fhir/Observation?subject=%ff",
                             "/fhir/Observation?subject=Patient/p&_count=x", "/fhir/Observation/a.b.c",
                             "/fhir/Observation/" + "a" * 300]),
       role=st.sampled_from(["patient", "clinician", None]))
def test_raw_requests_never_500(env, raw, ctype, method, path, role):
    headers = dict(env[role]) if role else {}
    r = env["client"].open(path, method=method, data=raw, headers=headers, content_type=ctype or None)
    _check(r, method)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(choices=st.lists(st.integers(0, 5), min_size=60, max_size=60))
def test_random_sittings_score_as_the_engine_does(env, choices):
    """Option index 5 declines. The final scores equal a Battery fed the same answers directly."""
    from cat_prom.session import Battery
    c, ph = env["client"], env["patient"]
    qr = post(c, ph, start_body(), "bank.pain-interference").get_json()
    log = []
    for k in choices:
        if qr["status"] != "in-progress":
            break
        q = current_question(qr)
        log.append((q["linkId"].split("/", 1)[1], None if k == 5 else k + 1))
        r = post(c, ph, with_answer(qr, declined=True) if k == 5 else with_answer(qr, k))
        assert r.status_code == 200, r.get_json()
        qr = r.get_json()
    assert qr["status"] == "completed"
    bank = env["app"].extensions["cat_prom"].registry.banks["pain-interference"]
    b = Battery([(bank, None)], seed=0)  # the default design selects deterministically: the seed plays no part
    for item_id, value in log:
        assert b.current_item.id == item_id
        b.decline(item_id) if value is None else b.answer(item_id, value)
    assert b.finished
    res = b.results()[0]
    s = scores(qr)["pain-interference"]
    if res["n_answered"]:
        assert (s["theta"], s["se"], s["t-score"]) == (res["theta"], res["se"], res["t_score"])
    else:
        assert s["theta"] is None and s["t-score"] is None

"""Issue 12 in the service: the previous-sitting prior looked up from the patient's domain results, and
joint batteries (create, answer, replay, results, clinical hook, FHIR), all over the HTTP API.

Answers are deterministic: each question is answered with its most probable option at a fixed true θ
(the bank's own model), so a "stable" patient gives the same kind of answers at every sitting and a
"flare" jumps from θ = -1 to θ = +1.5 between sittings.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apibanks import BATTERY, write_banks
from apihelpers import Keys, make_app

from cat_prom.irt import log_probabilities
from cat_prom.joint_battery import JointBattery
from cat_prom.session import sitting_from_dict

PREV = {"prior": {"type": "previous"}}
JOINT = {**BATTERY, "id": "pain-joint", "name": "Pain core battery, scored jointly",
         "designs": {b: {"min_items": 2, "max_items": 6, "se_target": 0.4} for b in BATTERY["banks"]},
         "correlation": {"banks": BATTERY["banks"],
                         "matrix": [[1.0, 0.7, -0.55, 0.45], [0.7, 1.0, -0.65, 0.5], [-0.55, -0.65, 1.0, -0.4],
                                    [0.45, 0.5, -0.4, 1.0]],
                         "method": "test matrix", "sample": "none: a fixed matrix for the tests"},
         "scoring": "joint", "order": "d_optimal"}


@pytest.fixture(scope="module")
def long_banks(tmp_path_factory):
    folder = write_banks(tmp_path_factory.mktemp("long-banks"))
    (folder / "batteries" / "pain-joint.json").write_text(json.dumps(JOINT))
    return folder


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'long.sqlite'}"


@pytest.fixture
def long_app(long_banks, db_url):
    app = make_app(long_banks, db_url)
    yield app
    app.extensions["cat_prom"].store.dispose()


def _mode_value(app, question: dict, theta: float):
    """The most probable answer to ``question`` at ``theta`` under its bank's model."""
    bank = app.extensions["cat_prom"].registry.banks[question["bank_id"]]
    j = bank.index(question["item_id"])
    k = int(np.argmax(log_probabilities([theta], bank.params)[0, j]))  # padded categories are -inf
    return bank.items[j].values[k]


def _answer(client, h, view, app, theta: float) -> dict:
    q = view["question"]
    r = client.post(f"/v1/sessions/{view['id']}/responses", headers=h,
                    json={"seq": q["seq"], "item_id": q["item_id"], "value": _mode_value(app, q, theta)})
    assert r.status_code == 200, r.json
    return r.json


def _sitting(client, h, app, body: dict, theta: float) -> dict:
    r = client.post("/v1/sessions", json=body, headers=h)
    assert r.status_code == 201, r.json
    view = r.json
    while view["status"] == "in_progress":
        view = _answer(client, h, view, app, theta)
    assert view["status"] == "finished"
    return view


def _by_bank(view: dict) -> dict:
    return {r["bank_id"]: r for r in view["results"]}


def test_returning_patient_uses_previous_prior_and_asks_fewer(long_app):
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    body = {"banks": ["pain-interference"], "patient": "p-long-1", "design": PREV, "seed": 11}
    first = _by_bank(_sitting(client, h, long_app, body, 0.5))["pain-interference"]
    assert first["prior"]["type"] == "population"  # nobody to remember: the population prior, said so
    assert "no previous scored sitting" in first["prior"]["note"]
    second = _by_bank(_sitting(client, h, long_app, {**body, "seed": 12}, 0.5))["pain-interference"]
    prior = second["prior"]
    assert prior["type"] == "previous"
    assert prior["previous"]["theta"] == pytest.approx(first["theta"], abs=1e-12)  # from domain_results
    assert prior["previous"]["se"] == pytest.approx(first["se"], abs=1e-12)
    assert 0 <= prior["previous"]["elapsed_days"] < 1  # the sittings are seconds apart
    assert prior["switched_after"] is None and prior["change_probability"] < prior["confirm_below"]
    assert second["n_answered"] < first["n_answered"], (first["n_answered"], second["n_answered"])
    assert abs(second["theta"] - first["theta"]) < 0.3
    # docs/api.md shows this object: the same keys as the service sends
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    block = text[text.index("<!-- checked: previous-prior -->"):].split("```json", 1)[1].split("```", 1)[0]
    doc = json.loads(block)
    assert set(doc) == set(prior) and doc["type"] == "previous"
    for key in ("population", "previous", "component"):
        assert set(doc[key]) == set(prior[key])


def test_flare_overrides_the_previous_prior(long_app):
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    body = {"banks": ["pain-interference"], "patient": "p-flare", "design": PREV, "seed": 21}
    before = _by_bank(_sitting(client, h, long_app, body, -1.0))["pain-interference"]
    flare = _by_bank(_sitting(client, h, long_app, {**body, "seed": 22}, 1.5))["pain-interference"]
    prior = flare["prior"]
    assert prior["type"] == "previous" and prior["previous"]["theta"] == pytest.approx(before["theta"], abs=1e-12)
    assert prior["switched_after"] is not None and prior["change_probability"] > prior["switch_at"]
    assert flare["theta"] > before["theta"] + 1.5  # the flare shows at the sitting where it happens
    # the same answers under the population prior give (nearly) the same score: the prior gave way
    alone = _by_bank(_sitting(client, h, long_app, {"banks": ["pain-interference"], "patient": "p-other",
                                                    "seed": 22}, 1.5))["pain-interference"]
    assert flare["t_score"] == pytest.approx(alone["t_score"], abs=3.0)


def test_jump_alternative_accepted_reported_and_replayed(long_app, long_banks, db_url):
    """``jump_sd`` in the design's prior (the clinic setting of benchmarks/results/longitudinal_burden.md): the
    service accepts it where it accepts the other prior keys, reports the alternative component, and a stored
    flare sitting replays to the same result in another app."""
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    design = {"prior": {"type": "previous", "jump_sd": 1.0, "confirm_below": 0.3}}
    body = {"banks": ["pain-interference"], "patient": "p-jump", "design": design, "seed": 41}
    before = _by_bank(_sitting(client, h, long_app, body, -1.0))["pain-interference"]
    view = _sitting(client, h, long_app, {**body, "seed": 42}, 1.5)
    flare = _by_bank(view)["pain-interference"]
    prior = flare["prior"]
    assert prior["type"] == "previous" and prior["jump_sd"] == 1.0 and prior["confirm_below"] == 0.3
    assert prior["alternative"]["mean"] == pytest.approx(before["theta"], abs=1e-12)
    assert prior["alternative"]["sd"] > prior["component"]["sd"]
    assert prior["switched_after"] is not None and flare["theta"] > before["theta"] + 1.5
    other = make_app(long_banks, db_url)
    try:
        again = other.test_client().get(f"/v1/sessions/{view['id']}", headers=h).json
        assert _by_bank(again)["pain-interference"] == flare
    finally:
        other.extensions["cat_prom"].store.dispose()
    bad = client.post("/v1/sessions", headers=h, json={**body, "design": {"prior": {"type": "previous", "jump_sd": 0}}})
    assert bad.status_code == 422 and "jump_sd" in json.dumps(bad.json)


def test_previous_prior_is_part_of_the_stored_sitting(long_app, long_banks, db_url):
    """The prior's input is fixed at creation: replay in another app on the same database (nothing cached),
    after the patient finished another sitting meanwhile, rebuilds exactly the same sitting."""
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    body = {"banks": ["pain-interference", "physical-function"], "patient": "p-replay", "design": PREV}
    _sitting(client, h, long_app, {**body, "seed": 31}, 0.3)
    r = client.post("/v1/sessions", json={**body, "seed": 32}, headers=h)
    view = r.json
    for _ in range(2):
        view = _answer(client, h, view, long_app, 0.3)
    sid = view["id"]
    _sitting(client, h, long_app, {**body, "seed": 33}, 2.0)  # a newer scored sitting, after this one started
    store = long_app.extensions["cat_prom"].store
    config, _ = store.get_replay(sid, 0)
    assert all(s["previous"]["elapsed_days"] >= 0 for s in config["sessions"])
    other = make_app(long_banks, db_url)
    try:
        c2 = other.test_client()
        assert c2.get(f"/v1/sessions/{sid}", headers=h).json["question"] == view["question"]
        apps, turn = [(client, long_app), (c2, other)], 0
        while view["status"] == "in_progress":  # answers alternate between the two apps: each replays the other's
            cl, ap = apps[turn % 2]
            cur = cl.get(f"/v1/sessions/{sid}", headers=h).json
            assert cur["question"] == view["question"]
            view = _answer(cl, h, cur, ap, 0.3)
            turn += 1
        assert turn >= 2
        final = c2.get(f"/v1/sessions/{sid}", headers=h).json
    finally:
        other.extensions["cat_prom"].store.dispose()
    config, log = store.get_replay(sid, final["n_responses"])
    rebuilt = sitting_from_dict(long_app.extensions["cat_prom"].registry.banks, config)
    for e in log:
        rebuilt.answer(e.item_id, e.value)
    assert rebuilt.finished
    got = {r["bank_id"]: r for r in json.loads(json.dumps(rebuilt.results()))}
    for bank_id, res in _by_bank(final).items():
        assert res["prior"]["type"] == "previous"
        assert res["prior"]["previous"] == config["sessions"][[s["bank_id"] for s in config["sessions"]].index(
            bank_id)]["previous"]  # the first sitting's values, not the newer one's
        assert res["theta"] == pytest.approx(got[bank_id]["theta"], abs=1e-12)
        assert res["items"] == got[bank_id]["items"]


def test_joint_battery_runs_jointly_through_the_api(long_app, long_banks, db_url):
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    r = client.post("/v1/sessions", json={"battery": "pain-joint", "patient": "p-joint", "seed": 41}, headers=h)
    assert r.status_code == 201, r.json
    view = r.json
    for _ in range(3):
        view = _answer(client, h, view, long_app, 0.8)
    sid = view["id"]
    store = long_app.extensions["cat_prom"].store
    config, _ = store.get_replay(sid, 0)
    assert config["scoring"] == "joint" and config["sequence"] == []
    long_app.extensions["cat_prom"].sessions.cache.clear()  # the next answer replays the stored log
    other = make_app(long_banks, db_url)
    try:
        assert other.test_client().get(f"/v1/sessions/{sid}", headers=h).json["question"] == view["question"]
    finally:
        other.extensions["cat_prom"].store.dispose()
    while view["status"] == "in_progress":
        view = _answer(client, h, view, long_app, 0.8)
    res = view["results"]
    assert [x["bank_id"] for x in res] == JOINT["banks"]
    assert all(x["scoring"] == "joint" and "borrowed_from" in x["joint"] for x in res)
    assert all(x["status"] == "scored" and x["n_answered"] >= 2 for x in res)
    # the engine's own joint battery, driven with the same answers, gives the same scores
    banks = long_app.extensions["cat_prom"].registry.banks
    config, log = store.get_replay(sid, view["n_responses"])
    jb = sitting_from_dict(banks, config)
    assert isinstance(jb, JointBattery)
    for e in log:
        jb.answer(e.item_id, e.value)
    for mine, theirs in zip(res, jb.results()):
        assert mine["theta"] == pytest.approx(theirs["theta"], abs=1e-12)
    # the clinical layer stored the joint posterior's domain results
    from api.store import clinical as cstore
    with store.read() as conn:
        rows = {d.bank_id: d for d in cstore.session_domain_results(conn, "default", sid)}
    for x in res:
        assert rows[x["bank_id"]].theta == pytest.approx(x["theta"], abs=1e-12)
        assert rows[x["bank_id"]].se == pytest.approx(x["se"], abs=1e-12)


def test_joint_battery_with_previous_prior(long_app):
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    body = {"battery": "pain-joint", "patient": "p-joint-prev", "design": PREV}
    first = _by_bank(_sitting(client, h, long_app, {**body, "seed": 51}, 0.2))
    second = _by_bank(_sitting(client, h, long_app, {**body, "seed": 52}, 0.2))
    for b, res in second.items():
        assert res["scoring"] == "joint"
        assert res["prior"]["type"] == "previous"
        assert res["prior"]["previous"]["theta"] == pytest.approx(first[b]["theta"], abs=1e-12)
    assert sum(r["n_answered"] for r in second.values()) <= sum(r["n_answered"] for r in first.values())


def test_joint_battery_design_errors_are_4xx(long_app):
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    r = client.post("/v1/sessions", json={"battery": "pain-joint", "patient": "p-x", "design": {"estimator": "map"}},
                    headers=h)
    assert r.status_code == 422, r.json
    assert r.json["type"].endswith("invalid-design")


def test_fhir_runs_a_joint_battery_jointly(long_banks, tmp_path):
    """FHIR $next-question builds the sitting the JSON API builds: the same questions as the engine's
    JointBattery with the sitting's seed and the same answers."""
    from fhirhelpers import SIGNING_KEY, current_question, post, start_body, with_answer

    from api.fhir.codes import EXT_CAT_STATE
    from api.service import start_sitting
    app = make_app(long_banks, f"sqlite:///{tmp_path / 'fhir-joint.sqlite'}", FHIR_SIGNING_KEY=SIGNING_KEY)
    try:
        fx = app.extensions["cat_prom_fhir"]
        joint, separate = fx.catalog.targets["battery.pain-joint"], fx.catalog.targets["battery.pain-core"]
        assert joint.battery.scoring == "joint" and joint.design_hash != separate.design_hash
        client, h = app.test_client(), Keys(app)["patient-app"]
        r = post(client, h, start_body(), "battery.pain-joint")
        assert r.status_code == 200, r.get_json()
        qr = r.get_json()
        cq = next(c for c in qr["contained"] if c["resourceType"] == "Questionnaire")
        ext = next(e for e in cq["extension"] if e["url"] == EXT_CAT_STATE)
        nonce = json.loads(next(p for p in ext["extension"] if p["url"] == "state")["valueString"])["n"]
        asked = []
        while qr["status"] == "in-progress":
            asked.append(current_question(qr)["linkId"])
            qr = post(client, h, with_answer(qr, 1)).get_json()
            assert len(asked) < 60
        jb = start_sitting(joint.battery, joint.entries(), seed=fx.signer.seed(nonce))
        assert isinstance(jb, JointBattery)
        expected = []
        while not jb.finished:
            expected.append(f"{jb.current_bank.id}/{jb.current_item.id}")
            jb.answer(jb.current_item.id, jb.current_item.values[1])
        assert asked == expected
    finally:
        app.extensions["cat_prom"].store.dispose()


@pytest.mark.postgres
def test_previous_prior_on_postgres(long_banks, pg_url, pg_schema):
    """The lookup and the replay on PostgreSQL: a second app on the same schema continues the sitting."""
    app = make_app(long_banks, pg_url, DATABASE_SCHEMA=pg_schema)
    other = make_app(long_banks, pg_url, DATABASE_SCHEMA=pg_schema)
    try:
        client, h = app.test_client(), Keys(app)["patient-app"]
        body = {"battery": "pain-joint", "patient": "p-pg", "design": PREV}
        first = _by_bank(_sitting(client, h, app, {**body, "seed": 61}, 0.4))
        view = client.post("/v1/sessions", json={**body, "seed": 62}, headers=h).json
        view = _answer(client, h, view, app, 0.4)
        c2 = other.test_client()
        assert c2.get(f"/v1/sessions/{view['id']}", headers=h).json["question"] == view["question"]
        view = _answer(c2, h, view, other, 0.4)
        while view["status"] == "in_progress":
            view = _answer(client, h, client.get(f"/v1/sessions/{view['id']}", headers=h).json, app, 0.4)
        for b, res in _by_bank(view).items():
            assert res["scoring"] == "joint" and res["prior"]["type"] == "previous"
            assert res["prior"]["previous"]["theta"] == pytest.approx(first[b]["theta"], abs=1e-12)
    finally:
        for a in (app, other):
            a.extensions["cat_prom"].store.dispose()


def test_previous_prior_skips_a_not_scored_sitting(long_app):
    """The last SCORED result is the previous sitting: a later sitting in which every question was declined
    (not scored) does not count."""
    client, h = long_app.test_client(), Keys(long_app)["patient-app"]
    body = {"banks": ["sleep-disturbance"], "patient": "p-declines",
            "design": {**PREV, "min_items": 2, "max_items": 3}}
    scored = _by_bank(_sitting(client, h, long_app, {**body, "seed": 71}, 0.0))["sleep-disturbance"]
    view = client.post("/v1/sessions", json={**body, "seed": 72}, headers=h).json
    while view["status"] == "in_progress":
        q = view["question"]
        view = client.post(f"/v1/sessions/{view['id']}/responses", headers=h,
                           json={"seq": q["seq"], "item_id": q["item_id"], "declined": True}).json
    skipped = _by_bank(view)["sleep-disturbance"]
    assert skipped["status"] == "not_scored" and skipped["prior"]["previous"]["theta"] == pytest.approx(
        scored["theta"], abs=1e-12)
    third = _by_bank(_sitting(client, h, long_app, {**body, "seed": 73}, 0.0))["sleep-disturbance"]
    assert third["prior"]["type"] == "previous"
    assert third["prior"]["previous"]["theta"] == pytest.approx(scored["theta"], abs=1e-12)
    assert third["prior"]["previous"]["elapsed_days"] >= skipped["prior"]["previous"]["elapsed_days"]


def test_the_shipped_monitoring_battery_runs_from_the_demo_banks(tmp_path):
    """``pain-core-monitoring`` (item_banks/batteries) through the API as a clinic would use it: a
    first visit is scored jointly (no previous sitting), a follow-up starts every domain from the
    previous sitting (scored on its own) and asks no more than the first visit."""
    from apihelpers import run_session
    root = Path(__file__).resolve().parents[2]
    app = make_app(root / "item_banks", f"sqlite:///{tmp_path / 'mon.sqlite'}")
    try:
        c, h = app.test_client(), Keys(app)["patient-app"]
        body = {"battery": "pain-core-monitoring", "patient": "p-mon", "seed": 3}
        _, first, n1 = run_session(c, h, body, answer=lambda q: q["options"][1]["value"])
        assert first["status"] == "finished"
        scored = [r for r in first["results"] if r.get("t_score") is not None]
        assert scored and all(r["scoring"] == "joint" and not r["joint"]["scored_alone"] for r in scored)
        _, again, n2 = run_session(c, h, {**body, "seed": 4}, answer=lambda q: q["options"][1]["value"])
        for r in again["results"]:
            if r.get("t_score") is not None:
                assert r["prior"]["type"] == "previous" and r["prior"]["jump_sd"] == 1
                assert r["joint"]["scored_alone"] is True
        assert n2 <= n1
    finally:
        app.extensions["cat_prom"].store.dispose()

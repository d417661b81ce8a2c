"""API keys (hashing, roles, tenants, revocation, CLI) and the banks resource."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from api import cli
from api.store import SessionStore as Database, api_keys


def test_missing_malformed_unknown_key_is_401(client):
    for h in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
              {"Authorization": "Bearer cpk_not-a-real-key"}, {"Authorization": "Bearer " + "x" * 5000}):
        r = client.get("/v1/banks", headers=h)
        assert r.status_code == 401, h
        assert r.mimetype == "application/problem+json"
        assert r.json["type"] == "urn:cat-prom:problem:unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_auth_checked_before_body(client):
    r = client.post("/v1/sessions", data="{not json", content_type="application/json")
    assert r.status_code in (400, 401)  # never 500
    r = client.post("/v1/sessions", json={"bogus": 1})
    assert r.status_code == 401


def test_keys_stored_only_as_hashes(app, keys):
    h = keys["patient-app"]
    secret = h["Authorization"].split()[1]
    with app.extensions["cat_prom"].store.read() as c:
        rows = c.execute(sa.select(api_keys)).all()
    dumped = json.dumps([[str(x) for x in r] for r in rows])
    assert secret not in dumped and secret[4:] not in dumped
    assert all(len(r.key_hash) == 64 for r in rows)


def test_secret_key_peppers_hashes(tmp_path, banks_dir):
    from apihelpers import Keys, make_app
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'db.sqlite'}", SECRET_KEY="s3cret")
    h = Keys(app)["clinician"]
    assert app.test_client().get("/v1/banks", headers=h).status_code == 200
    app.extensions["cat_prom"].store.dispose()
    other = make_app(banks_dir, f"sqlite:///{tmp_path / 'db.sqlite'}", SECRET_KEY="different")
    assert other.test_client().get("/v1/banks", headers=h).status_code == 401
    other.extensions["cat_prom"].store.dispose()


@pytest.mark.parametrize("role, method, path, body, allowed", [
    ("clinician", "post", "/v1/sessions", {"battery": "pain-core", "patient": "p"}, False),
    ("researcher", "post", "/v1/sessions", {"battery": "pain-core", "patient": "p"}, False),
    ("admin", "post", "/v1/sessions", {"battery": "pain-core", "patient": "p"}, False),
    ("patient-app", "get", "/v1/patients/p/results", None, False),
    ("researcher", "get", "/v1/patients/p/results", None, False),
    ("clinician", "get", "/v1/patients/p/results", None, True),
    ("patient-app", "get", "/v1/keys", None, False),
    ("clinician", "get", "/v1/keys", None, False),
    ("admin", "get", "/v1/keys", None, True),
    ("researcher", "get", "/v1/banks", None, True),
])
def test_roles(client, keys, role, method, path, body, allowed):
    kwargs = {"headers": keys[role]}
    if body is not None:
        kwargs["json"] = body
    r = getattr(client, method)(path, **kwargs)
    if allowed:
        assert r.status_code == 200, r.json
    else:
        assert r.status_code == 403 and r.json["type"].endswith(":forbidden")
        assert role in r.json["detail"]


def test_tenant_isolation(client, keys):
    a = keys["patient-app@clinic-a"]
    b = keys["patient-app@clinic-b"]
    v = client.post("/v1/sessions", json={"battery": "pain-core", "patient": "shared-ref"}, headers=a).json
    for h, code in ((a, 200), (b, 404)):
        assert client.get(f"/v1/sessions/{v['id']}", headers=h).status_code == code
    q = v["question"]
    r = client.post(f"/v1/sessions/{v['id']}/responses", headers=b,
                    json={"seq": 1, "item_id": q["item_id"], "value": 1})
    assert r.status_code == 404
    assert client.delete(f"/v1/sessions/{v['id']}", headers=b).status_code == 404
    assert client.get(f"/v1/sessions/{v['id']}", headers=keys["clinician@clinic-b"]).status_code == 404
    assert client.get(f"/v1/sessions/{v['id']}", headers=keys["clinician@clinic-a"]).status_code == 200


def test_keys_api_create_list_revoke(client, keys):
    admin = keys["admin@clinic-a"]
    keys["clinician@clinic-b"]  # another tenant's key must not be listed
    r = client.post("/v1/keys", json={"role": "clinician", "name": "ward 3"}, headers=admin)
    assert r.status_code == 201
    new = r.json
    assert new["key"].startswith("cpk_") and new["tenant"] == "clinic-a"
    listed = client.get("/v1/keys", headers=admin).json
    assert {k["tenant"] for k in listed} == {"clinic-a"}
    assert all("key" not in k for k in listed)
    h = {"Authorization": "Bearer " + new["key"]}
    assert client.get("/v1/banks", headers=h).status_code == 200
    r = client.delete(f"/v1/keys/{new['id']}", headers=admin)
    assert r.status_code == 200 and r.json["revoked_at"]
    assert client.get("/v1/banks", headers=h).status_code == 401
    assert client.delete("/v1/keys/key_nope", headers=admin).status_code == 404
    r = client.post("/v1/keys", json={"role": "root", "name": "x"}, headers=admin)
    assert r.status_code == 422 and "role" in r.json["errors"]


def test_a_key_cannot_revoke_itself(client, keys):
    admin = keys["admin"]
    me = [k for k in client.get("/v1/keys", headers=admin).json if k["role"] == "admin"]
    assert len(me) == 1
    r = client.delete(f"/v1/keys/{me[0]['id']}", headers=admin)
    assert r.status_code == 409 and r.json["type"] == "urn:cat-prom:problem:own-key"
    assert client.get("/v1/keys", headers=admin).status_code == 200  # still usable


def test_cli_keys(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    monkeypatch.setenv("CAT_PROM_DATABASE_URL", url)
    assert cli.main(["keys", "create", "--role", "clinician", "--name", "Dr A", "--tenant", "clinic-x"]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("cpk_") and "only time" in out
    assert cli.main(["keys", "create", "--role", "admin", "--name", "ops", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert cli.main(["keys", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["role"] for r in rows} == {"clinician", "admin"}
    assert secret not in json.dumps(rows)
    assert cli.main(["keys", "list"]) == 0
    assert "clinic-x" in capsys.readouterr().out
    assert cli.main(["keys", "revoke", made["id"]]) == 0
    assert "Revoked" in capsys.readouterr().out
    assert cli.main(["keys", "revoke", "key_missing"]) == 1
    assert cli.main(["keys", "create", "--role", "admin", "--name", "x", "--tenant", "bad tenant!"]) == 2
    db = Database(url)
    with db.read() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(api_keys)
                         .where(api_keys.c.revoked_at.is_not(None))).scalar_one() == 1
    db.dispose()


def test_bootstrap_keys_only_when_empty(tmp_path, capsys):
    db = Database(f"sqlite:///{tmp_path / 'b.sqlite'}")
    db.migrate()
    made = cli.bootstrap_keys(db)
    assert [k["role"] for k in made] == ["admin", "patient-app"]
    out = capsys.readouterr().out
    assert all(k["key"] in out for k in made)
    assert cli.bootstrap_keys(db) == []
    db.dispose()


def test_list_banks(client, keys):
    r = client.get("/v1/banks", headers=keys["patient-app"])
    assert r.status_code == 200
    banks = {b["id"]: b for b in r.json["banks"]}
    assert set(banks) == {"pain-intensity", "pain-interference", "physical-function", "sleep-disturbance"}
    assert banks["physical-function"]["direction"] == "higher_is_better"
    assert banks["pain-intensity"]["content_hash"].startswith("sha256:")
    assert r.json["batteries"][0]["id"] == "pain-core"


def test_bank_detail_by_role(client, keys):
    pub = client.get("/v1/banks/pain-intensity", headers=keys["patient-app"]).json
    assert pub["items"][0].keys() == {"id", "stem", "options"}
    assert all("thresholds" not in it for it in pub["items"])
    assert client.get("/v1/banks/pain-intensity", headers=keys["clinician"]).json == pub
    full = client.get("/v1/banks/pain-intensity", headers=keys["researcher"]).json
    assert full["format"] == "cat-prom-bank/1"
    assert {"a", "thresholds"} <= set(full["items"][0])
    r = client.get("/v1/banks/nope", headers=keys["researcher"])
    assert r.status_code == 404 and r.json["type"].endswith(":bank-not-found")


def test_simulation_for_researchers(app, client, keys):
    from test_simulation_jobs import run_simulation
    s = run_simulation(app, client, keys["researcher"], {"bank": "pain-interference", "n": 200, "seed": 1,
                                                         "design": {"max_items": 6}})
    assert s["n"] == 200 and s["bank_id"] == "pain-interference"
    assert s["test_length"]["max"] <= 6 and s["rmse"] > 0
    again = run_simulation(app, client, keys["researcher"], {"bank": "pain-interference", "n": 200, "seed": 1,
                                                             "design": {"max_items": 6}})
    assert again["rmse"] == s["rmse"]
    assert client.post("/v1/simulations", json={"bank": "pain-interference"},
                       headers=keys["patient-app"]).status_code == 403
    assert client.post("/v1/simulations", json={"bank": "nope"}, headers=keys["researcher"]).status_code == 404
    r = client.post("/v1/simulations", json={"bank": "pain-interference", "n": 10**6}, headers=keys["researcher"])
    assert r.status_code == 422 and "n" in r.json["errors"]
    r = client.post("/v1/simulations", json={"bank": "pain-interference", "design": {"max_items": -1}},
                    headers=keys["researcher"])
    assert r.status_code == 422 and r.json["type"].endswith(":invalid-design")

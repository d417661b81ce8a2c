"""API keys: optional expiry (401 saying so once expired) and last use, written at most once a minute."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import api.keys as keys_mod
from apihelpers import Keys
from api.store import SessionStore, utcnow


def _create(client, admin, **body):
    return client.post("/v1/keys", json={"role": "clinician", "name": "ward 3", **body}, headers=admin)


def _check_expiry_and_last_use(app, client, monkeypatch):
    admin = Keys(app)["admin"]
    r = _create(client, admin, expires_in_days=30)
    assert r.status_code == 201, r.json
    k = r.json
    exp = dt.datetime.fromisoformat(k["expires_at"])
    assert dt.timedelta(days=29, hours=23) < exp - utcnow() <= dt.timedelta(days=30)
    assert k["last_used_at"] is None
    h = {"Authorization": "Bearer " + k["key"]}
    assert client.get("/v1/patients", headers=h).status_code == 200
    listed = {x["id"]: x for x in client.get("/v1/keys", headers=admin).json}
    used = listed[k["id"]]["last_used_at"]
    assert used is not None and abs(dt.datetime.fromisoformat(used) - utcnow()) < dt.timedelta(minutes=1)
    assert listed[k["id"]]["expires_at"] == k["expires_at"]
    # A minute later than its expiry the key is refused, with a clear detail.
    monkeypatch.setattr(keys_mod, "utcnow", lambda: exp + dt.timedelta(seconds=1))
    r = client.get("/v1/patients", headers=h)
    assert r.status_code == 401 and "expired" in r.json["detail"] and k["expires_at"] in r.json["detail"]
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    monkeypatch.undo()
    assert client.get("/v1/patients", headers=h).status_code == 200
    # expires_at as a time
    at = (utcnow() + dt.timedelta(days=2)).replace(microsecond=0)
    r = _create(client, admin, expires_at=at.isoformat())
    assert r.status_code == 201 and dt.datetime.fromisoformat(r.json["expires_at"]) == at
    assert _create(client, admin).json["expires_at"] is None


def test_expiry_and_last_use_sqlite(app, client, monkeypatch):
    _check_expiry_and_last_use(app, client, monkeypatch)


@pytest.mark.postgres
def test_expiry_and_last_use_postgres(pg_app, monkeypatch):
    _check_expiry_and_last_use(pg_app, pg_app.test_client(), monkeypatch)


@pytest.mark.parametrize("body", [
    {"expires_in_days": 0}, {"expires_in_days": 3651}, {"expires_in_days": "3"}, {"expires_in_days": 1.5},
    {"expires_at": "2001-01-01T00:00:00Z"}, {"expires_at": "2999-01-01T00:00:00Z"}, {"expires_at": "soon"},
    {"expires_at": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat(), "expires_in_days": 3},
])
def test_bad_expiry_is_422(client, keys, body):
    r = _create(client, keys["admin"], **body)
    assert r.status_code == 422, (body, r.json)
    assert r.json["type"].endswith("validation-error")


def test_last_use_is_written_at_most_once_a_minute(app, keys, monkeypatch):
    h = keys["clinician"]
    client = app.test_client()
    store = app.extensions["cat_prom"].store
    calls = []
    real = store.touch_key
    monkeypatch.setattr(store, "touch_key", lambda *a: (calls.append(a), real(*a)))
    for _ in range(5):
        assert client.get("/v1/patients", headers=h).status_code == 200
    assert len(calls) == 1
    # Another process that touches within the minute writes nothing (the statement is conditional).
    kid = keys._made["clinician"]["_id"]
    first = {r.id: r for r in store.list_keys()}[kid].last_used_at
    store.touch_key(kid, first + dt.timedelta(seconds=30), keys_mod.LAST_USED_RESOLUTION)
    assert {r.id: r for r in store.list_keys()}[kid].last_used_at == first
    store.touch_key(kid, first + dt.timedelta(seconds=61), keys_mod.LAST_USED_RESOLUTION)
    assert {r.id: r for r in store.list_keys()}[kid].last_used_at == first + dt.timedelta(seconds=61)


def test_an_expired_key_ends_its_web_sessions(app, client, keys, monkeypatch):
    import re
    page = client.get("/clinic/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    db = app.extensions["cat_prom"].store
    k = keys_mod.create_key(db, role="clinician", name="soon", expires_at=utcnow() + dt.timedelta(seconds=2))
    assert client.post("/clinic/sign-in", data={"csrf_token": token, "key": k["key"]}).status_code == 303
    assert client.get("/clinic/patients").status_code == 200
    with db.write() as conn:  # the key's expiry has passed
        from api.store import api_keys
        conn.execute(api_keys.update().where(api_keys.c.id == k["id"]).values(expires_at=utcnow()))
    assert client.get("/clinic/patients").status_code == 303


def test_cli_expiry(tmp_path, capsys):
    import json
    from api.cli import main
    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    assert main(["keys", "--database-url", url, "create", "--role", "admin", "--name", "x", "--expires-in-days",
                 "7", "--json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert dt.timedelta(days=6) < dt.datetime.fromisoformat(k["expires_at"]) - utcnow() <= dt.timedelta(days=7)
    assert main(["keys", "--database-url", url, "create", "--role", "admin", "--name", "x", "--expires-in-days",
                 "0"]) == 2
    assert main(["keys", "--database-url", url, "list"]) == 0
    assert "never" in capsys.readouterr().out


def _migrated_columns(url, schema=None):
    s = SessionStore(url, schema=schema)
    s.migrate("0005")
    with s.read() as conn:
        before = {c["name"] for c in sa.inspect(conn).get_columns("api_keys")}
    s.migrate()
    with s.read() as conn:
        after = {c["name"]: c["nullable"] for c in sa.inspect(conn).get_columns("api_keys")}
    s.dispose()
    return before, after


def test_migration_0006_sqlite(tmp_path):
    before, after = _migrated_columns(f"sqlite:///{tmp_path / 'm.sqlite'}")
    assert not {"expires_at", "last_used_at"} & before and after["expires_at"] and after["last_used_at"]


@pytest.mark.postgres
def test_migration_0006_postgres(pg_url, pg_schema):
    before, after = _migrated_columns(pg_url, pg_schema)
    assert not {"expires_at", "last_used_at"} & before and after["expires_at"] and after["last_used_at"]

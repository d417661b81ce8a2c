"""Helpers shared by the API tests (imported by conftest and the test modules)."""
from __future__ import annotations

from api import create_app
from api import keys as keys_mod

#: Tests drive many requests with one key (and many 401s); the rate-limit tests switch limits on.
RATE_LIMITS_OFF = {"RATE_LIMIT_SESSIONS": "off", "RATE_LIMIT_ANSWERS": "off", "RATE_LIMIT_AUTH_FAILURES": "off",
                   "REDIS_URL": None}


def make_app(banks_dir, db_url, **extra):
    cfg = {"DATABASE_URL": db_url, "BANKS_DIR": str(banks_dir), "TESTING": True, "KEY_CACHE_TTL": 0,
           "LOG_LEVEL": "WARNING", **RATE_LIMITS_OFF}
    cfg.update(extra)
    return create_app(cfg)


class Keys:
    """Create keys on demand: ``keys["clinician"]`` or ``keys["clinician@tenant"]`` -> headers dict."""

    def __init__(self, app):
        self.app = app
        self._made = {}

    def make(self, role: str, tenant: str = "default") -> dict:
        db = self.app.extensions["cat_prom"].store
        k = keys_mod.create_key(db, role=role, name=f"test {role}", tenant=tenant,
                                pepper=self.app.config.get("CAT_PROM_SECRET_KEY"))
        return {"Authorization": "Bearer " + k["key"], "_id": k["id"]}

    def __getitem__(self, role_tenant) -> dict:
        if role_tenant not in self._made:
            role, _, tenant = role_tenant.partition("@")
            self._made[role_tenant] = self.make(role, tenant or "default")
        return {k: v for k, v in self._made[role_tenant].items() if not k.startswith("_")}


def run_session(client, headers, body=None, answer=lambda q: q["options"][2]["value"], max_steps=200):
    """Drive a whole session; returns (create reply, final reply, n answers)."""
    body = body or {"battery": "pain-core", "patient": "p-001"}
    r = client.post("/v1/sessions", json=body, headers=headers)
    assert r.status_code == 201, r.json
    first = view = r.json
    n = 0
    while view["status"] == "in_progress":
        q = view["question"]
        r = client.post(f"/v1/sessions/{first['id']}/responses", headers=headers,
                        json={"seq": q["seq"], "item_id": q["item_id"], "value": answer(q)})
        assert r.status_code == 200, r.json
        view = r.json
        n += 1
        assert n < max_steps
    return first, view, n

"""Make the example requests and replies of docs/api.md from real ones (a test keeps them in step).

Runs the service in-process (Flask test client, a temporary SQLite file, the demo banks in
``item_banks/``) through the walk-through of docs/api.md and writes each reply to
``docs/examples/api/<name>.json``, then rewrites the ```json block that follows each
``<!-- example: <name> -->`` line of docs/api.md with it. What would differ between runs is
replaced by fixed stand-ins: ids, times, keys and request ids; numbers are rounded to 3 decimals;
long lists (options, items, answers, results) keep their first entries and end with "...".
The sitting is seeded, so its questions and scores are the same on every run.

Run: ``.venv/bin/python docs/examples/make_api_examples.py`` (from the repository root).
``tests/api/test_docs_api.py`` fails when docs/api.md or these files drift from what the service sends.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "examples" / "api"
DOC = ROOT / "docs" / "api.md"
SEED = 7
PATIENT = "pt-7f3a9c"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMES = {"created_at": "2026-11-22T12:15:36.868710Z", "updated_at": "2026-11-22T12:17:02.104522Z",
          "answered_at": "2026-11-22T12:16:10.553019Z", "finished_at": "2026-11-22T12:19:02.417731Z",
          "expires_at": "2026-11-29T12:17:02.104522Z", "revoked_at": None}
_STANDINS = {"request_id": "5c0e8a5d6f0b4c1e9d7a3b2f1e0c9d8a", "key": "cpk_3kX9...(43 characters)",
             "session_id": "f450d1de-8456-4bd9-b908-e30e4cb363ab"}
_KEEP = {"options": 2, "items": 2, "answers": 2, "results": 1, "sessions": 1, "history": 2, "by_rule": 2}
#: clinical-layer ids (alerts, personal goals, webhooks and their secrets) -> stand-ins
_ID_STANDINS = {"al_": "al_3f9c0e5a1b7d24c6e8f0", "goal_": "goal_8d2e4f6a0b1c3e5f", "whsec_": "whsec_...(43 characters)",
                "wh_": "wh_1a2b3c4d5e6f7a8b9c0d"}


def _clean(obj, key=None):
    if isinstance(obj, dict):
        return {k: _clean(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        keep = _KEEP.get(key)
        items = [_clean(v) for v in obj]
        return items[:keep] + ["..."] if keep is not None and len(items) > keep else items
    if key in _TIMES and obj is not None:
        return _TIMES[key]
    if key in _STANDINS and obj is not None:
        return _STANDINS[key]
    if isinstance(obj, str) and obj.startswith("key_"):
        return "key_5f0c2a7e9b1d3c48"
    if isinstance(obj, str) and obj.startswith(tuple(_ID_STANDINS)):
        return next(v for k, v in _ID_STANDINS.items() if obj.startswith(k))
    if isinstance(obj, str) and (key or "").endswith("_at"):
        return _TIMES["updated_at"]
    if key in ("rated_on", "date", "since", "until") and isinstance(obj, str):
        return {"rated_on": "2026-11-22", "date": "2026-11-22", "since": "2026-10-23T12:19:02.417731Z",
                "until": "2026-11-22T12:19:02.417731Z"}[key]
    if isinstance(obj, str):
        return _UUID.sub(_STANDINS["session_id"], obj)
    if isinstance(obj, float):
        return round(obj, 3)
    return obj


def generate() -> dict[str, object]:
    """Run the walk-through on a fresh service; returns {example name: cleaned JSON}."""
    from api import create_app
    from api import keys as keys_mod

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/examples.sqlite", "BANKS_DIR": str(ROOT / "item_banks"),
                          "TESTING": True, "LOG_LEVEL": "WARNING", "KEY_CACHE_TTL": 0})
        store = app.extensions["cat_prom"].store
        try:
            admin = {"Authorization": "Bearer " + keys_mod.create_key(store, role="admin", name="first-run admin")["key"]}
            app_key = keys_mod.create_key(store, role="patient-app", name="first-run patient-app")["key"]
            h = {"Authorization": "Bearer " + app_key}
            c = app.test_client()
            out["readyz"] = c.get("/readyz").json
            r = c.post("/v1/keys", json={"role": "clinician", "name": "Ward 3 dashboard"}, headers=admin)
            out["key-create"] = r.json
            clinician = {"Authorization": "Bearer " + r.json["key"]}
            r = c.post("/v1/sessions", json={"battery": "pain-core", "patient": PATIENT, "seed": SEED}, headers=h)
            out["session-create"] = v = r.json
            sid = v["id"]
            q = v["question"]
            r = c.post(f"/v1/sessions/{sid}/responses", headers=h,
                       json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][2]["value"]})
            out["answer"] = v = r.json
            q = v["question"]
            r = c.post(f"/v1/sessions/{sid}/responses", headers=h, json={"seq": q["seq"], "item_id": q["item_id"],
                                                                         "value": 99})
            out["problem"] = r.json
            r = c.post(f"/v1/sessions/{sid}/responses", headers=h,
                       json={"seq": q["seq"], "item_id": q["item_id"], "declined": True})
            out["session-get"] = c.get(f"/v1/sessions/{sid}", headers=h).json
            v = r.json
            while v["status"] == "in_progress":
                q = v["question"]
                v = c.post(f"/v1/sessions/{sid}/responses", headers=h,
                           json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][1]["value"]}).json
            out["finished"] = v
            out["patient-results"] = c.get(f"/v1/patients/{PATIENT}/results?limit=100&offset=0",
                                           headers=clinician).json
            out.update(_clinical(c, admin, h, clinician, store))
        finally:
            store.dispose()
    return {name: _clean(obj) for name, obj in out.items()}


def _clinical(c, admin, app_h, clinician, store) -> dict[str, object]:
    """docs/api.md §10: settings, a goal, two more sittings (the last one worse), alerts, triage,
    personal goals, a webhook and the body the worker would POST."""
    import sqlalchemy as sa

    from api.store import outbox

    out: dict[str, object] = {}
    c.put("/v1/settings/banks/pain-intensity", headers=admin, json={"default_acceptable_t": 60, "mid_t": 5})
    r = c.post("/v1/webhooks", headers=admin, json={"url": "https://ward.example.org/cat-prom-alerts",
                                                    "description": "ward 3 inbox"})
    out["webhook-create"] = r.json
    r = c.put(f"/v1/patients/{PATIENT}/goals/pain-intensity", headers=app_h,
              json={"t_score": 55, "agreed_by": "both", "note": "agreed at the March review"})
    out["goal-put"] = r.json
    for category in (1, 3):
        v = c.post("/v1/sessions", headers=app_h, json={"banks": ["pain-intensity"], "patient": PATIENT,
                                                        "seed": SEED}).json
        while v["status"] == "in_progress":
            q = v["question"]
            v = c.post(f"/v1/sessions/{v['id']}/responses", headers=app_h, json={
                "seq": q["seq"], "item_id": q["item_id"], "value": q["options"][category]["value"]}).json
    out["goals"] = c.get(f"/v1/patients/{PATIENT}/goals", headers=clinician).json
    res = c.get(f"/v1/patients/{PATIENT}/results", headers=clinician).json
    out["clinical-domain-result"] = next(d for d in res["sessions"][-1]["results"] if d["bank_id"] == "pain-intensity")
    out["alerts"] = c.get("/v1/alerts?status=open&domain=pain-intensity", headers=clinician).json
    out["triage"] = c.get("/v1/patients?limit=50&offset=0", headers=clinician).json
    out["alert-stats"] = c.get("/v1/alerts/stats", headers=clinician).json
    levels = {"-2": "cannot leave the house", "-1": "to the end of the street", "0": "to the shop with one rest",
              "1": "to the shop and back without a rest", "2": "to the park and back"}
    g = c.post(f"/v1/patients/{PATIENT}/personal-goals", headers=app_h,
               json={"title": "Walk to the shop and back", "weight": 1, "levels": levels}).json
    c.post(f"/v1/patients/{PATIENT}/personal-goals/{g['id']}/ratings", headers=app_h,
           json={"level": 0, "note": "managed it twice this week"})
    out["personal-goals"] = c.get(f"/v1/patients/{PATIENT}/personal-goals", headers=clinician).json
    with store.read() as conn:
        payload = conn.execute(sa.select(outbox.outbox.c.payload).order_by(outbox.outbox.c.id)).scalars().first()
    out["webhook-payload"] = json.loads(payload)
    return out


def _layout(obj, indent: int, width: int) -> str:
    """Compact JSON, broken over lines (two-space indent) only where a value does not fit ``width``."""
    flat = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    if indent + len(flat) <= width or not isinstance(obj, (dict, list)) or not obj:
        return flat
    pad = " " * (indent + 2)
    if isinstance(obj, dict):
        parts = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_layout(v, indent + 2, width)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(parts) + "\n" + " " * indent + "}"
    parts = [pad + _layout(v, indent + 2, width) for v in obj]
    return "[\n" + ",\n".join(parts) + "\n" + " " * indent + "]"


def render(obj) -> str:
    return _layout(obj, 0, 100) + "\n"


def doc_with(text: str, examples: dict[str, object]) -> str:
    """``text`` (docs/api.md) with the ```json block after each ``<!-- example: NAME -->`` replaced."""
    def sub(m):
        return f"{m.group(1)}```json\n{render(examples[m.group(2)])}```"
    return re.sub(r"(<!-- example: ([a-z-]+) -->\n)```json\n.*?```", sub, text, flags=re.S)


def main() -> int:
    examples = generate()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, obj in examples.items():
        (OUT / f"{name}.json").write_text(render(obj), encoding="utf-8")
    DOC.write_text(doc_with(DOC.read_text(encoding="utf-8"), examples), encoding="utf-8")
    print(f"wrote {len(examples)} examples to {OUT.relative_to(ROOT)} and updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

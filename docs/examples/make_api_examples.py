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
_KEEP = {"options": 2, "items": 2, "answers": 2, "results": 1, "sessions": 1}


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
    if key == "id" and isinstance(obj, str) and obj.startswith("key_"):
        return "key_5f0c2a7e9b1d3c48"
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
        finally:
            store.dispose()
    return {name: _clean(obj) for name, obj in out.items()}


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

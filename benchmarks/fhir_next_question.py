#!/usr/bin/env python3
"""What statelessness costs: ``$next-question`` (replays the whole sitting from the posted
QuestionnaireResponse) against the JSON API's answer route (a cached engine object, one answer),
per question of the same sitting, in process (Flask test client, SQLite in a temporary folder, the
repository's demo banks, the `pain-core` battery, the same answers on both paths).

Prints a Markdown table: for questions 1, 5, 10, ... the median wall time per request (ms) of each
route over ``--repeat`` sittings, and the request body size of ``$next-question`` (KB).

    .venv/bin/python benchmarks/fhir_next_question.py --repeat 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "api"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from apihelpers import Keys, make_app
    from fhirhelpers import choose, current_question, post, start_body, with_answer

    app = make_app(ROOT / "item_banks", f"sqlite:///{tempfile.mkdtemp()}/b.sqlite", FHIR_SIGNING_KEY="bench",
                   LOG_LEVEL="ERROR")
    c = app.test_client()
    ph = Keys(app)["patient-app"]
    fhir_ms, json_ms, sizes = {}, {}, {}
    for _ in range(args.repeat):
        qr = post(c, ph, start_body(), "battery.pain-core").get_json()
        view = c.post("/v1/sessions", json={"battery": "pain-core", "patient": "bench"}, headers=ph).get_json()
        n = 0
        while qr["status"] == "in-progress":
            n += 1
            q = current_question(qr)
            k = choose(q["linkId"], len(q["answerOption"]) - 1)
            body = with_answer(qr, k)
            raw = json.dumps(body)
            t0 = time.perf_counter()
            r = c.post("/fhir/Questionnaire/$next-question", data=raw, headers=ph, content_type="application/fhir+json")
            fhir_ms.setdefault(n, []).append((time.perf_counter() - t0) * 1000)
            sizes[n] = len(raw) / 1000
            qr = r.get_json()
            jq = view["question"]
            assert jq["item_id"] == q["linkId"].split("/", 1)[1]
            t0 = time.perf_counter()
            view = c.post(f"/v1/sessions/{view['id']}/responses", headers=ph, json={
                "seq": jq["seq"], "item_id": jq["item_id"], "value": jq["options"][k]["value"]}).get_json()
            json_ms.setdefault(n, []).append((time.perf_counter() - t0) * 1000)
    load = os.getloadavg()[0]
    print(f"`$next-question` vs `POST /v1/sessions/{{id}}/responses`, pain-core battery ({n} questions), "
          f"median of {args.repeat} sittings; load average {load:.2f} at the end; Python {sys.version.split()[0]}\n")
    print("| question | $next-question ms | JSON API answer ms | request body KB |")
    print("|---:|---:|---:|---:|")
    for i in sorted(fhir_ms):
        if i == 1 or i % 5 == 0 or i == n:
            print(f"| {i} | {statistics.median(fhir_ms[i]):.1f} | {statistics.median(json_ms[i]):.1f} | "
                  f"{sizes[i]:.1f} |")
    app.extensions["cat_prom"].store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End to end, as the README tells a new user: `cat-prom serve` on a fresh SQLite database with
the demo banks, the keys it prints on first start, a patient app completing the `pain-core`
battery over HTTP, a clinician key made with `cat-prom keys create`, and the patient's results.

The scores the service reports are checked against an independent computation: EAP scoring of
the same answers with :func:`cat_prom.scoring.eap` (a different code path from the session's
incremental posterior), to 1e-9.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cat_prom.bank import ItemBank
from cat_prom import scoring

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port, method, path, body=None, key=None):
    """One request: (status, Content-Type, parsed JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": "Bearer " + key} if key else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, r.getheader("Content-Type"), (json.loads(raw) if raw else None)
    finally:
        conn.close()


@pytest.fixture
def served(tmp_path):
    port = _free_port()
    env = dict(os.environ, CAT_PROM_DATABASE_URL=f"sqlite:///{tmp_path / 'e2e.sqlite'}", PYTHONUNBUFFERED="1")
    env.pop("CAT_PROM_BANKS_DIR", None)  # the README's default: the repository's item_banks/
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cat_prom.cli", "serve", "--port", str(port)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if _call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server not ready: " + (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        out = (tmp_path / "serve.log").read_text()
        keys = dict(re.findall(r"^\s+(admin|patient-app)\s+key_\w+\s+(cpk_\S+)", out, re.M))
        yield port, keys, env, out
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_new_user_flow(served):
    port, keys, env, out = served
    assert set(keys) == {"admin", "patient-app"}, out  # printed once on first start

    # the reference page and the OpenAPI document are public and offline
    status, ctype, _ = _call(port, "GET", "/v1/openapi.json")
    assert status == 200 and "json" in ctype
    status, ctype, body = _call(port, "GET", "/v1/banks")
    assert status == 401 and ctype.startswith("application/problem+json")

    # a patient app completes the pain-core battery
    app_key = keys["patient-app"]
    status, _, v = _call(port, "POST", "/v1/sessions", {"battery": "pain-core", "patient": "pt-e2e"}, app_key)
    assert status == 201, v
    sid = v["id"]
    rng = np.random.default_rng(3)
    n = 0
    while v["status"] == "in_progress":
        q = v["question"]
        assert q["position"] == n + 1
        value = q["options"][int(rng.integers(len(q["options"])))]["value"]
        status, _, v = _call(port, "POST", f"/v1/sessions/{sid}/responses",
                             {"seq": q["seq"], "item_id": q["item_id"], "value": value}, app_key)
        assert status == 200, v
        n += 1
        assert n < 80
    assert v["status"] == "finished"
    results = {r["bank_id"]: r for r in v["results"]}
    assert len(results) == 7

    # a clinician key from the command line, as the README says
    made = subprocess.run([sys.executable, "-m", "cat_prom.cli", "keys", "create", "--role", "clinician",
                           "--name", "e2e clinician", "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                          check=True)
    clin_key = json.loads(made.stdout)["key"]
    status, _, hist = _call(port, "GET", "/v1/patients/pt-e2e/results", key=clin_key)
    assert status == 200, hist
    assert [s["session_id"] for s in hist["sessions"]] == [sid]
    # the patient app may not read clinical results
    assert _call(port, "GET", "/v1/patients/pt-e2e/results", key=app_key)[0] == 403

    # independent check of every domain's score: batch EAP scoring of the same answers
    for r in hist["sessions"][0]["results"]:
        bank = ItemBank.load(REPO / "item_banks" / f"{r['bank_id']}.json")
        x = np.full((1, bank.n_items), np.nan)
        for it in r["items"]:
            if it["status"] == "answered":
                j = bank.index(it["item_id"])
                x[0, j] = bank.category(j, it["value"])
        ref = scoring.eap(x, bank)  # default grid and prior, as the battery's designs use
        assert r["theta"] == pytest.approx(ref.theta[0], abs=1e-9)  # same grid, independent code path
        assert r["se"] == pytest.approx(ref.se[0], abs=1e-9)
        assert r["t_score"] == pytest.approx(50 + 10 * ref.theta[0], abs=1e-7)
        assert r["band"] == bank.band(r["t_score"])
        assert r["stop_reason"] in {"screen_negative", "max_items", "se_target", "se_change", "classification",
                                    "bank_exhausted"}

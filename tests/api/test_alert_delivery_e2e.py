"""End to end with real processes: `cat-prom serve` (killed with -9 mid-sitting and restarted), a
patient worse than their goal, the alert raised by the finishing answer, a retried finishing answer
(idempotent: no second alert), and `cat-prom worker` delivering it once, signed, to a receiver."""
from __future__ import annotations

import signal

import pytest

from api import keys as keys_mod
from api.store import SessionStore
from apiserver import Server, request
from test_webhook_worker import Receiver, _wait, _worker

pytestmark = pytest.mark.slow


def test_alert_survives_server_kill9_and_is_delivered_once(tmp_path, banks_dir):
    url = f"sqlite:///{tmp_path / 'e2e.sqlite'}"
    store = SessionStore(url)
    store.migrate()
    h = {r: {"Authorization": "Bearer " + keys_mod.create_key(store, role=r, name="t")["key"]}
         for r in ("patient-app", "clinician", "admin")}
    srv = Server(db_url=url, banks_dir=banks_dir, workers=1, log_path=tmp_path / "s1.log").wait_ready()
    rx = None
    try:
        assert request(srv.base, "PUT", "/v1/settings/alerts", {"enabled_rules": ["above_acceptable"]},
                       h["admin"])[0] == 200
        status, hook = request(srv.base, "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, h["admin"])
        assert status == 201
        rx = Receiver(tmp_path, hook["secret"])
        assert request(srv.base, "PATCH", f"/v1/webhooks/{hook['id']}",
                       {"url": f"http://127.0.0.1:{rx.port}/hook"}, h["admin"])[0] == 200
        assert request(srv.base, "PUT", "/v1/patients/p-e2e/goals/pain-intensity",
                       {"t_score": 40, "agreed_by": "both"}, h["patient-app"])[0] == 200
        status, v = request(srv.base, "POST", "/v1/sessions", {
            "banks": ["pain-intensity"], "patient": "p-e2e", "design": {"min_items": 4, "max_items": 4}},
            h["patient-app"])
        assert status == 201
        sid, last = v["id"], None
        while v["status"] == "in_progress":
            q = v["question"]
            last = {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][4]["value"]}
            status, v = request(srv.base, "POST", f"/v1/sessions/{sid}/responses", last, h["patient-app"])
            assert status == 200, v
            if v["n_responses"] == 2:  # mid-sitting: the server dies, nothing is flushed, and comes back
                srv.kill9()
                srv = Server(db_url=url, banks_dir=banks_dir, workers=1, log_path=tmp_path / "s2.log").wait_ready()
        # the app did not see the reply of the finishing answer and sends it again: the same reply
        status, again = request(srv.base, "POST", f"/v1/sessions/{sid}/responses", last, h["patient-app"])
        assert status == 200 and again["status"] == "finished" and again["results"] == v["results"]
        status, alerts = request(srv.base, "GET", "/v1/alerts", None, h["clinician"])
        assert [a["rule"] for a in alerts["alerts"]] == ["above_acceptable"]
        alert = alerts["alerts"][0]

        w = _worker(url, "--poll", "0.05", "--timeout", "5", "--lease", "10")
        try:
            _wait(lambda: any(r.get("first") for r in rx.records()), what="the alert at the receiver")
            _wait(lambda: request(srv.base, "GET", f"/v1/webhooks/{hook['id']}/deliveries", None,
                                  h["admin"])[1] != [], what="the delivery log")
        finally:
            w.send_signal(signal.SIGTERM)
            assert w.wait(timeout=20) == 0
        recs = rx.records()
        assert [(r["alert_id"], r["sig_ok"], r["event"]) for r in recs] == [(alert["id"], True, "alert.opened")]
        status, log = request(srv.base, "GET", f"/v1/webhooks/{hook['id']}/deliveries", None, h["admin"])
        assert [(d["alert_id"], d["status_code"], d["attempt"]) for d in log] == [(alert["id"], 200, 1)]
    finally:
        srv.stop()
        if rx is not None:
            rx.stop()
        store.dispose()

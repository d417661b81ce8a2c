"""A webhook receiver for the delivery tests, run as its own process.

It checks each request's signature independently of :mod:`api.webhooks` (HMAC-SHA256 over
``"<t>.<body>"`` written out here), remembers the alert ids it has processed (the dedupe a real
receiver does) and appends one JSON line per request to ``--log``. Misbehaviour for the tests:
``--fail-first N`` answers 500 to the first N requests; ``--hang ALERT_ID:SECONDS`` holds the
first request for that alert that long before answering (a timeout, or a worker to kill).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--hang", action="append", default=[])
    args = ap.parse_args()
    hang = {a.split(":")[0]: float(a.split(":")[1]) for a in args.hang}
    lock = threading.Lock()
    state = {"n": 0, "seen": set(), "hung": set()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            sig = self.headers.get("X-Cat-Prom-Signature", "")
            parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
            expected = hmac.new(args.secret.encode(), parts.get("t", "").encode() + b"." + body,
                                hashlib.sha256).hexdigest()
            sig_ok = hmac.compare_digest(expected, parts.get("v1", "")) and abs(time.time() - int(parts["t"])) < 300
            payload = json.loads(body)
            aid = payload.get("alert_id")
            with lock:
                state["n"] += 1
                n = state["n"]
                do_hang = aid in hang and aid not in state["hung"]
                if do_hang:
                    state["hung"].add(aid)
                fail = n <= args.fail_first
                first = sig_ok and not fail and aid not in state["seen"]
                if first and not do_hang:
                    state["seen"].add(aid)
                rec = {"n": n, "alert_id": aid, "event": self.headers.get("X-Cat-Prom-Event"),
                       "delivery": self.headers.get("X-Cat-Prom-Delivery"), "sig_ok": sig_ok,
                       "status": 401 if not sig_ok else 500 if fail else 200, "first": first and not do_hang,
                       "hang": do_hang, "keys": sorted(payload)}
                with open(args.log, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if do_hang:
                time.sleep(hang[aid])
                # a receiver that got the body processes it even if the sender has gone away
                with lock:
                    first = aid not in state["seen"]
                    state["seen"].add(aid)
                    with open(args.log, "a") as fh:
                        fh.write(json.dumps({"n": n, "alert_id": aid, "processed_after_hang": True,
                                             "first": first}) + "\n")
            try:
                self.send_response(rec["status"])
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()

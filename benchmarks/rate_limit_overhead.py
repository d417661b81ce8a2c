#!/usr/bin/env python3
"""What counting rate limits costs per request: flask-limiter's hooks and decorators against the same
two limits counted directly with ``limits`` (as ``api/limits.py`` does), on a trivial Flask route.

The per-address limit is checked before every request (counted only on 401), the per-key limit is
counted on the route, both with the sliding window counter in memory. Prints CPU microseconds per
request (Flask test client, 3,000 requests after 200 of warm-up, the least of ``--rounds`` interleaved rounds).
Needs flask-limiter, which the service itself no longer uses::

    .venv/bin/pip install flask-limiter
    .venv/bin/python benchmarks/rate_limit_overhead.py
"""
from __future__ import annotations

import argparse
import time

import flask
from limits import parse_many, strategies
from limits.storage import MemoryStorage

AUTH, PER_KEY = "20/minute;100/hour", "100000/second;3000000/minute"  # never refused: the work is measured


def make(kind: str) -> flask.Flask:
    app = flask.Flask("bench")
    if kind == "none":
        @app.post("/a")
        def a():
            return "ok"
    elif kind == "flask-limiter":
        from flask_limiter import ApplicationLimit, Limiter
        from flask_limiter.util import get_remote_address
        lim = Limiter(key_func=get_remote_address, strategy="sliding-window-counter", headers_enabled=False,
                      application_limits=[ApplicationLimit(lambda: AUTH, deduct_when=lambda r: r.status_code == 401)],
                      storage_uri="memory://")
        lim.init_app(app)

        @app.post("/a")
        @lim.limit(lambda: PER_KEY, key_func=lambda: "key-1", scope="answers")
        def a():
            return "ok"
    else:
        counter = strategies.SlidingWindowCounterRateLimiter(MemoryStorage())
        auth, per_key = parse_many(AUTH), parse_many(PER_KEY)

        @app.before_request
        def refuse_spent():
            for item in auth:
                if not counter.test(item, "cat-prom", flask.request.remote_addr or "-", "auth-failures"):
                    return "429", 429

        @app.post("/a")
        def a():
            for item in per_key:
                if not counter.hit(item, "cat-prom", "key-1", "answers"):
                    return "429", 429
            return "ok"
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    kinds = ("none", "flask-limiter", "limits directly")
    clients = {k: make(k).test_client() for k in kinds}
    for c in clients.values():
        for _ in range(200):
            assert c.post("/a").status_code == 200
    best = {k: float("inf") for k in kinds}
    for _ in range(args.rounds):  # interleaved, so that a slow moment of a shared machine hits all three
        for k, c in clients.items():
            t = time.process_time()
            for _ in range(args.n):
                c.post("/a")
            best[k] = min(best[k], (time.process_time() - t) / args.n)
    print("| limits counted by | CPU µs per request | minus no limits |\n|---|---:|---:|")
    for k in kinds:
        print(f"| {k} | {1e6 * best[k]:.0f} | {1e6 * (best[k] - best['none']):.0f} |")

if __name__ == "__main__":
    main()

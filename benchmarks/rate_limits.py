#!/usr/bin/env python3
"""The two abuses of issue 10 against `cat-prom serve` with its default rate limits.

1. One patient-app key starts sessions as fast as it can for ``--seconds`` (default 6) over
   ``--connections`` keep-alive connections (default 20): how many were started (201) and how many
   refused (429)? Before the limits, one key started 3,000 sessions in 6 s.
2. ``--bad`` requests (default 2,000) with a wrong key from one address: how many got 401 and how
   many 429? Before, all 2,000 got 401.

Every 429 is checked: problem+json of type ``too-many-requests`` with a whole-seconds
``Retry-After``. The server runs 2 workers on a fresh SQLite database, with the counters in Redis
when ``--redis URL`` is given (shared by the workers, so the limits hold for the whole service),
otherwise in each worker's memory (a client can then get up to 2 x a limit). Prints a Markdown
table; the limits are the defaults of ``api.config`` unless ``CAT_PROM_RATE_LIMIT_*`` are set.
With Redis, the counters of client address 127.0.0.1 are deleted before and after the run (so
that reruns start clean): give it a Redis database of its own (the ``/N`` of the URL).

    .venv/bin/python benchmarks/rate_limits.py --redis redis://127.0.0.1:6379/0
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import api_load  # noqa: E402
from api_load import Conn, banks_folder, prepare_db, start_server, stop_server  # noqa: E402

START = {"banks": ["pain-intensity"], "patient": "pt-rate-bench"}


class Tally:
    def __init__(self):
        self.codes: dict[int, int] = {}
        self.bad_429 = 0  # a 429 that was not problem+json with Retry-After

    def add(self, status, body, headers):
        self.codes[status] = self.codes.get(status, 0) + 1
        if status == 429:
            ok = (isinstance(body, dict) and body.get("type") == "urn:cat-prom:problem:too-many-requests"
                  and headers.get("retry-after", "").isdigit() and int(headers["retry-after"]) >= 1)
            self.bad_429 += 0 if ok else 1


async def flood_sessions(host, port, key, seconds, n_conn, tally):
    deadline = time.perf_counter() + seconds

    async def one():
        conn = Conn(host, port, key)
        while time.perf_counter() < deadline:
            status, body, headers = await raw_request(conn, "POST", "/v1/sessions", START)
            tally.add(status, body, headers)
        conn.close()
    await asyncio.gather(*(one() for _ in range(n_conn)))


async def wrong_keys(host, port, n, tally):
    conn = Conn(host, port, "cpk_" + "x" * 43)
    for _ in range(n):
        status, body, headers = await raw_request(conn, "GET", "/v1/banks")
        tally.add(status, body, headers)
    conn.close()


async def raw_request(conn, method, path, body=None):
    """One request on ``conn`` returning (status, JSON body, lower-cased headers)."""
    import json
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {conn.host}:{conn.port}\r\nAuthorization: Bearer {conn.key}\r\n"
            f"Connection: keep-alive\r\n")
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    if conn.writer is None:
        conn.reader, conn.writer = await asyncio.open_connection(conn.host, conn.port)
    conn.writer.write(head.encode() + b"\r\n" + data)
    raw_head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 30)
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k:
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    payload = await asyncio.wait_for(conn.reader.readexactly(n), 30) if n else b""
    if headers.get("connection", "").lower() == "close":
        conn.close()
    return int(lines[0].split()[1]), (json.loads(payload) if payload else None), headers


def forget_loopback(redis_url) -> None:
    """Delete the failed-authentication counters of 127.0.0.1 (this benchmark's client)."""
    import redis
    r = redis.Redis.from_url(redis_url)
    for k in r.scan_iter(match="LIMITS:{LIMITER/cat-prom/127.0.0.1/*"):
        r.delete(k)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--bad", type=int, default=2000)
    ap.add_argument("--redis", help="CAT_PROM_REDIS_URL for the server (default: none, per-worker memory)")
    args = ap.parse_args(argv)
    from api.config import _SETTINGS
    limits = {k: os.environ.get(f"CAT_PROM_{k}", _SETTINGS[k][0])
              for k in ("RATE_LIMIT_SESSIONS", "RATE_LIMIT_ANSWERS", "RATE_LIMIT_AUTH_FAILURES")}
    for k, v in limits.items():  # the benchmark's server gets these, not api_load's raised ones
        api_load.BENCH_LIMITS[f"CAT_PROM_{k}"] = v
        os.environ[f"CAT_PROM_{k}"] = v
    if args.redis:
        os.environ["CAT_PROM_REDIS_URL"] = args.redis
        forget_loopback(args.redis)
    env_line = (f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"load average before start {os.getloadavg()[0]:.2f}")
    banks_dir, tmp_banks = banks_folder(None, START["banks"])
    tmpdir = tempfile.mkdtemp(prefix="cat-prom-rate-")
    try:
        url, schema, key = prepare_db("sqlite", None, tmpdir)
        proc, port, cmd = start_server(url, schema, banks_dir, 2, f"{tmpdir}/server.log", 2)
        try:
            sessions, bad = Tally(), Tally()
            asyncio.run(flood_sessions("127.0.0.1", port, key, args.seconds, args.connections, sessions))
            asyncio.run(wrong_keys("127.0.0.1", port, args.bad, bad))
        finally:
            stop_server(proc)
    finally:
        if args.redis:
            forget_loopback(args.redis)
        shutil.rmtree(tmpdir, ignore_errors=True)
        if tmp_banks:
            shutil.rmtree(tmp_banks, ignore_errors=True)
    storage = f"Redis ({args.redis})" if args.redis else "memory of each of the 2 workers"
    print(f"\n{env_line}; 2 workers x 2 threads, SQLite; counters in {storage}")
    print("limits: " + ", ".join(f"`CAT_PROM_{k}={v}`" for k, v in limits.items()) + "\n")
    print("| abuse | requests | 201/200 | 401 | 429 | other | 429 not problem+json with Retry-After |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t in ((f"one key starts sessions for {args.seconds:g} s ({args.connections} connections)", sessions),
                    (f"{args.bad} requests with a wrong key from one address", bad)):
        total = sum(t.codes.values())
        ok = t.codes.get(201, 0) + t.codes.get(200, 0)
        other = total - ok - t.codes.get(401, 0) - t.codes.get(429, 0)
        print(f"| {name} | {total} | {ok} | {t.codes.get(401, 0)} | {t.codes.get(429, 0)} | {other} | {t.bad_429} |")
    return 0 if not (sessions.bad_429 or bad.bad_429) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Load test of the HTTP service: N concurrent simulated patients each complete a 4-domain battery.

For each database (SQLite, PostgreSQL) the script starts ``cat-prom serve`` on a fresh
database, creates a patient-app key, and runs the patients over loopback with an asyncio client.
Each patient keeps one HTTP/1.1 keep-alive connection, as an app's HTTP client does, and reopens
it when the server has closed it (``--connection close``: a new TCP connection for every request,
as the first version of this script did). Latency is per answer, measured by the client from the
first byte sent (or the connect, when one is needed) to the last byte of the reply. Throughput is
the answers completed inside the measured window divided by its length. Two load shapes:

* ``paced``: each patient sends an answer every ``patients / rate`` seconds on average (uniform
  0.5-1.5 x, measured from the previous send), so the offered load is ``--rate`` answers/s in total
  (default 500, the target); this measures latency at the target throughput.
* ``saturate``: no think time (closed loop); this measures the maximum throughput, where latency
  is mostly queueing (by Little's law, latency ≈ patients / throughput).

Prints answers/s, p50/p95/p99/max latency per answer (ms), and the error count, as a Markdown table.

    .venv/bin/python benchmarks/api_load.py                       # both databases, both shapes
    .venv/bin/python benchmarks/api_load.py --db sqlite --modes paced --patients 200 --rate 800
    .venv/bin/python benchmarks/api_load.py --url http://127.0.0.1:8000 --key cpk_...   # existing server
    .venv/bin/python benchmarks/api_load.py --compare-with /tmp/base   # before/after in one run

``--compare-with DIR`` also runs every measurement against ``cat-prom serve`` of another checkout
(its own ``DIR/.venv``, made by ``make install`` there), alternating before/after per database, and
prints the after/before ratios. The rate limits of ``cat-prom serve`` stay on, raised above the
load one key offers here (``CAT_PROM_RATE_LIMIT_*`` below) so that the limiter's work is measured
but nothing is refused; set those variables to measure other limits.

The load generator shares the machine's CPUs with the server; on a 2-core box it takes a real share.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FOUR_DOMAINS = ("pain-intensity", "pain-interference", "physical-function", "sleep-disturbance")


# ----------------------------------------------------------------------------- HTTP
class Conn:
    """One patient's HTTP/1.1 connection to the server.

    ``keep_alive=True``: the connection is reused for the patient's next request, as a phone app's
    HTTP client does (it is reopened when the server closed it, e.g. after ``--keepalive`` idle
    seconds). ``keep_alive=False``:
    a new TCP connection per request (``Connection: close``). Either way a request's latency runs
    from the first byte sent (or the connect, when a connection has to be opened) to the last
    byte received.
    """

    def __init__(self, host, port, key, keep_alive=True, timeout=30.0):
        self.host, self.port, self.key, self.keep_alive, self.timeout = host, port, key, keep_alive, timeout
        self.reader = self.writer = None
        self.connects = 0

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method, path, body=None):
        try:
            return await self._request(method, path, body)
        except BaseException:
            self.close()  # a timed-out or broken exchange leaves the connection unusable
            raise

    async def _request(self, method, path, body):
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {self.key}\r\n"
                f"Connection: {'keep-alive' if self.keep_alive else 'close'}\r\n")
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        msg = head.encode() + b"\r\n" + data
        for attempt in (0, 1):
            reused = self.writer is not None
            if not reused:
                self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                                  self.timeout)
                self.connects += 1
            try:
                self.writer.write(msg)
                raw_head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout)
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                self.close()
                # a kept-alive connection the server had already closed: reopen and send again
                # (the answer API is idempotent per seq, so a resend is always safe)
                if reused and attempt == 0 and (not isinstance(e, asyncio.IncompleteReadError) or not e.partial):
                    continue
                raise
            break
        status = int(raw_head[9:12])
        headers = raw_head.lower()
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", headers)
        if m:
            payload = await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), self.timeout)
        elif b"transfer-encoding: chunked" in headers:
            payload = await asyncio.wait_for(_read_chunked(self.reader), self.timeout)
        else:
            payload = await asyncio.wait_for(self.reader.read(-1), self.timeout)
            self.close()
        if not self.keep_alive or b"\r\nconnection: close" in headers:
            self.close()
        return status, (json.loads(payload) if payload else None)


async def _read_chunked(reader) -> bytes:
    out = bytearray()
    while True:
        n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if n == 0:
            await reader.readuntil(b"\r\n")
            return bytes(out)
        out += await reader.readexactly(n + 2)
        del out[-2:]


# -------------------------------------------------------------------------- patients
async def patient(i, host, port, key, start, think_s, lat, errors, counts, deadline, measure_from, keep_alive):
    """One simulated patient: starts sittings back to back until the deadline, answering each
    question from a latent trait (consistent answers) after an optional think time."""
    rng = random.Random(i)
    theta = rng.gauss(0, 1)
    conn = Conn(host, port, key, keep_alive)
    try:
        await _patient(i, conn, start, think_s, lat, errors, counts, deadline, measure_from, rng, theta)
    finally:
        counts["connects"] += conn.connects
        conn.close()


async def _patient(i, conn, start, think_s, lat, errors, counts, deadline, measure_from, rng, theta):
    if think_s:
        await asyncio.sleep(rng.uniform(0, think_s))
    while time.perf_counter() < deadline:
        try:
            status, v = await conn.request("POST", "/v1/sessions", dict(start, patient=f"bench-{i}"))
        except Exception as e:  # noqa: BLE001 - counted
            errors.append(f"create: {type(e).__name__}")
            await asyncio.sleep(0.05)
            continue
        if status != 201:
            errors.append(f"create {status}")
            return
        counts["sessions"] += 1
        sid = v["id"]
        while v["status"] == "in_progress" and time.perf_counter() < deadline:
            q = v["question"]
            opts = q["options"]
            k = min(len(opts) - 1, max(0, round((len(opts) - 1) / 2 + 1.2 * theta + rng.gauss(0, 0.7))))
            body = {"seq": q["seq"], "item_id": q["item_id"], "value": opts[k]["value"]}
            t0 = time.perf_counter()
            try:
                status, nv = await conn.request("POST", f"/v1/sessions/{sid}/responses", body)
            except Exception as e:  # noqa: BLE001 - counted, then retried like a phone would
                errors.append(f"answer: {type(e).__name__}")
                await asyncio.sleep(0.05)
                continue
            t1 = time.perf_counter()
            if status != 200:
                errors.append(f"answer {status}")
                return
            counts["all_answers"] += 1
            if t0 >= measure_from:  # sent after the warm-up: its latency is measured
                lat.append(t1 - t0)
                counts["answers"] += 1
            if measure_from <= t1 <= deadline:  # completed inside the measured window: throughput
                counts["completed_in_window"] += 1
            v = nv
            if think_s:  # the next answer is sent think time after the previous one was *sent*,
                # so the offered rate does not drop as latency grows (as long as latency < think time)
                await asyncio.sleep(max(0.0, t0 + think_s * rng.uniform(0.5, 1.5) - time.perf_counter()))
        if v["status"] == "finished":
            counts["finished"] += 1


async def run_load(host, port, key, start, patients, think_s, duration, warmup, keep_alive=True):
    """Run for warmup + duration seconds; answers sent during the warm-up (which includes every
    patient's first session creation) are not counted."""
    lat, errors = [], []
    counts = {"sessions": 0, "answers": 0, "finished": 0, "all_answers": 0, "connects": 0, "completed_in_window": 0}
    t0 = time.perf_counter()
    measure_from = t0 + warmup
    await asyncio.gather(*(patient(i, host, port, key, start, think_s, lat, errors, counts,
                                   measure_from + duration, measure_from, keep_alive) for i in range(patients)))
    # Throughput is answers completed inside the measured window divided by its length (not by the
    # time until the last patient woke from its think time after the window closed).
    counts["drain_s"] = time.perf_counter() - measure_from - duration
    return lat, errors, counts, duration


def summarise(lat, errors, counts, wall):
    lat_ms = sorted(x * 1000 for x in lat)

    def pct(p):
        if not lat_ms:
            return float("nan")
        return lat_ms[min(len(lat_ms) - 1, int(round(p / 100 * (len(lat_ms) - 1))))]

    return {"answers": counts["answers"], "sessions_finished": counts["finished"], "wall_s": wall,
            "answers_per_s": counts["completed_in_window"] / wall if wall else 0.0, "p50": pct(50), "p95": pct(95),
            "p99": pct(99), "max": lat_ms[-1] if lat_ms else float("nan"),
            "mean": statistics.fmean(lat_ms) if lat_ms else float("nan"), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5]}


# ---------------------------------------------------------------------------- server
def group_cpu_seconds(pgid):
    """User+system CPU seconds of every live process in process group ``pgid`` (Linux /proc)."""
    if pgid is None or not os.path.isdir("/proc"):
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), after pid and (comm)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(repo=None):
    if repo is not None:  # another checkout, in its own virtualenv
        return [str(Path(repo) / ".venv" / "bin" / "python"), "-m", "cat_prom.cli", "serve"]
    exe = shutil.which("cat-prom", path=str(Path(sys.executable).parent)) or shutil.which("cat-prom")
    if exe:
        try:
            if subprocess.run([exe, "serve", "--help"], capture_output=True, timeout=60).returncode == 0:
                return [exe, "serve"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return [sys.executable, "-m", "api.cli", "serve"]  # the same code, before cat_prom.cli wires `serve`


def _server_priority():
    """The server runs at normal priority even when the load generator was niced (--client-nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:  # lowering niceness needs privileges; then the server shares the client's
        pass


#: Rate limits for the benchmark's server: on, but above what one key offers here (one key serves
#: every simulated patient, as one app's key serves all its patients).
BENCH_LIMITS = {"CAT_PROM_RATE_LIMIT_SESSIONS": "1000/second", "CAT_PROM_RATE_LIMIT_ANSWERS": "10000/second"}


def start_server(db_url, schema, banks_dir, workers, log_path, threads=None, repo=None):
    port = free_port()
    env = dict(os.environ, CAT_PROM_DATABASE_URL=db_url, CAT_PROM_BANKS_DIR=str(banks_dir),
               CAT_PROM_LOG_LEVEL=os.environ.get("CAT_PROM_LOG_LEVEL", "WARNING"))
    for k, v in BENCH_LIMITS.items():
        env.setdefault(k, v)
    if schema:
        env["CAT_PROM_DATABASE_SCHEMA"] = schema
    cmd = serve_command(repo) + ["--port", str(port), "--no-bootstrap-keys"]
    if workers:
        cmd += ["--workers", str(workers)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=str(repo or REPO), env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_server_priority)
    deadline = time.monotonic() + 60
    import urllib.request
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {Path(log_path).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, port, " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:3]))
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not become ready")


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def banks_folder(arg, bank_ids):
    if arg:
        return Path(arg), None
    repo_banks = REPO / "item_banks"
    if all((repo_banks / f"{b}.json").exists() for b in bank_ids):
        return repo_banks, None  # the demo banks
    sys.path.insert(0, str(REPO / "tests" / "api"))
    from apibanks import write_banks  # synthetic 4-bank battery used by the API tests
    tmp = tempfile.mkdtemp(prefix="cat-prom-bench-banks-")
    return write_banks(tmp), tmp


def prepare_db(kind, pg_url, tmpdir):
    from api import keys as keys_mod
    from api.store import SessionStore as Database
    if kind == "sqlite":
        url, schema = f"sqlite:///{tmpdir}/bench.sqlite", None
    else:
        url, schema = pg_url, "bench_" + uuid.uuid4().hex[:10]
    db = Database(url, schema=schema)
    db.migrate()
    key = keys_mod.create_key(db, role="patient-app", name="api_load benchmark")["key"]
    db.dispose()
    return url, schema, key


def drop_schema(pg_url, schema):
    import sqlalchemy as sa
    eng = sa.create_engine(pg_url)
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


def describe_checkout(repo) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    return Path(repo).name


def print_ratios(rows) -> None:
    """After/before ratios for each database and load shape measured on both servers."""
    before = {(r["db"], r["mode"]): r for r in rows if r["server"].startswith("before")}
    after = {(r["db"], r["mode"]): r for r in rows if not r["server"].startswith("before")}
    print("\n| database | load | answers/s after/before | p50 after/before | p99 after/before "
          "| server CPU per answer after/before | p99 after (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key in after:
        if key not in before:
            continue
        a, b = after[key], before[key]

        def ratio(k):
            return a[k] / b[k] if b[k] else float("nan")
        print(f"| {key[0]} | {key[1]} | {ratio('answers_per_s'):.2f} | {ratio('p50'):.2f} | {ratio('p99'):.2f} | "
              f"{ratio('server_cpu_ms_per_answer'):.2f} | {a['p99']:.1f} |")


# ------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--db", default="sqlite,postgres", help="comma list: sqlite, postgres")
    ap.add_argument("--modes", default="paced,saturate", help="comma list: paced, saturate")
    ap.add_argument("--rate", type=float, default=500.0, help="offered answers/s in paced mode")
    ap.add_argument("--duration", type=float, default=15.0,
                    help="measured seconds per run; each patient completes sittings back to back until then")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="seconds before measuring starts (covers the burst of first session creations)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: cat-prom serve's)")
    ap.add_argument("--threads", type=int, default=None, help="threads per worker for reads (writes, every request here, run on the event loop); 0: "
                         "every request on the loop (default: cat-prom serve's, 2 here; a --compare-with "
                         "checkout keeps its own)")
    ap.add_argument("--compare-with", metavar="DIR",
                    help="also measure `cat-prom serve` of this other checkout (with its own .venv): before/after")
    ap.add_argument("--banks", default=",".join(FOUR_DOMAINS),
                    help="comma list of bank ids each patient completes in one sitting (default: 4 domains)")
    ap.add_argument("--battery", help="administer this battery instead of --banks")
    ap.add_argument("--banks-dir")
    ap.add_argument("--pg-url", default=os.environ.get("CAT_PROM_BENCH_PG_URL", DEFAULT_PG))
    ap.add_argument("--url", help="use this running server instead of starting one (needs --key)")
    ap.add_argument("--key", help="patient-app key for --url")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    ap.add_argument("--connection", choices=("keep-alive", "close"), default="keep-alive",
                    help="keep-alive (default): one persistent connection per patient, as an app's HTTP client "
                         "keeps; close: a new TCP connection for every request")
    ap.add_argument("--client-nice", type=int, default=0,
                    help="lower the load generator's CPU priority by this much (the server keeps its own)")
    args = ap.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bank_ids = [b.strip() for b in args.banks.split(",") if b.strip()]
    start = {"battery": args.battery} if args.battery else {"banks": bank_ids}
    rows = []
    env_line = (f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"load average before start {os.getloadavg()[0]:.2f}")
    print(env_line, file=sys.stderr)

    threads = args.threads if args.threads is not None else int(os.environ.get("CAT_PROM_THREADS", "2"))
    # writes (every request of this benchmark) run on each worker's event loop; reads on `threads` threads
    threads_label = f"loop+{threads}t" if threads else "loop"

    def one(host, port, key, db_label, workers_label, cmd, pgid=None, server="this checkout"):
        for mode in modes:
            think = args.patients / args.rate if mode == "paced" else 0.0
            srv0, cli0 = group_cpu_seconds(pgid), time.process_time()
            lat, errors, counts, wall = asyncio.run(
                run_load(host, port, key, start, args.patients, think, args.duration, args.warmup,
                         keep_alive=args.connection == "keep-alive"))
            srv_cpu, cli_cpu = group_cpu_seconds(pgid) - srv0, time.process_time() - cli0
            s = summarise(lat, errors, counts, wall)
            n = max(counts["all_answers"], 1)  # CPU covers the warm-up too
            s["server_cpu_ms_per_answer"] = srv_cpu * 1000 / n
            s["client_cpu_ms_per_answer"] = cli_cpu * 1000 / n
            s["connections"] = counts["connects"]
            s["connection"] = args.connection
            s.update(db=db_label, mode=mode, patients=args.patients, server=server,
                     workers=f"{workers_label}x"
                             f"{threads_label if server == 'this checkout' or args.threads is not None else '(its default)'}",
                     offered=f"{args.rate:g}/s" if mode == "paced" else "max", command=cmd,
                     load_after=os.getloadavg()[0])
            rows.append(s)
            print(f"  {server[:14]:<14} {db_label:<10} {mode:<9} {s['answers']:>6} answers in {s['wall_s']:.1f}s -> "
                  f"{s['answers_per_s']:.0f}/s, p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, "
                  f"errors {s['errors']} {s['error_kinds']}; CPU/answer server {s['server_cpu_ms_per_answer']:.2f} ms, "
                  f"client {s['client_cpu_ms_per_answer']:.2f} ms; {s['connections']} TCP connections", file=sys.stderr)

    if args.client_nice:
        os.nice(args.client_nice)  # servers started later reset their own priority (_server_priority)
    if args.url:
        from urllib.parse import urlparse
        u = urlparse(args.url)
        one(u.hostname, u.port or 80, args.key, "external", "?", args.url)
    else:
        from api.cli import default_workers
        banks_dir, tmp_banks = banks_folder(args.banks_dir, bank_ids)
        for kind in [d.strip() for d in args.db.split(",") if d.strip()]:
            tmpdir = tempfile.mkdtemp(prefix=f"cat-prom-bench-{kind}-")
            try:
                url, schema, key = prepare_db(kind, args.pg_url, tmpdir)
            except Exception as e:  # noqa: BLE001
                print(f"skipping {kind}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            workers = args.workers or default_workers(url)
            servers = [("this checkout", None)]
            if args.compare_with:
                servers.insert(0, (f"before ({describe_checkout(args.compare_with)})", args.compare_with))
            try:
                for label, repo in servers:
                    proc, port, cmd = start_server(url, schema, banks_dir, workers, f"{tmpdir}/server.log",
                                                   args.threads, repo)
                    try:
                        one("127.0.0.1", port, key, kind, workers, cmd, pgid=proc.pid, server=label)
                    finally:
                        stop_server(proc)
            finally:
                if os.environ.get("CAT_PROM_BENCH_KEEP_LOG"):
                    shutil.copy(f"{tmpdir}/server.log", os.environ["CAT_PROM_BENCH_KEEP_LOG"] + f".{kind}.log")
                if schema:
                    drop_schema(args.pg_url, schema)
                shutil.rmtree(tmpdir, ignore_errors=True)
        if tmp_banks:
            shutil.rmtree(tmp_banks, ignore_errors=True)

    what = f"battery {args.battery}" if args.battery else f"banks {', '.join(bank_ids)} (default designs)"
    print(f"\n{env_line}; server: `{rows[0]['command'] if rows else '-'}`; each patient: {what}\n")
    limits = ", ".join(f"{k}={os.environ.get(k, v)}" for k, v in BENCH_LIMITS.items())
    print(f"rate limits of this checkout's server: {limits} (per key; all patients share one key)\n")
    print("| server | database | load | patients | workers | answers | answers/s | p50 ms | p95 ms | p99 ms | max ms "
          "| errors | sittings finished | server CPU ms/answer | client CPU ms/answer | TCP connections |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['db']} | {r['mode']} ({r['offered']}) | {r['patients']} | {r['workers']} | {r['answers']} | "
              f"{r['answers_per_s']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
              f"{r['errors']} | {r['sessions_finished']} | {r['server_cpu_ms_per_answer']:.2f} | "
              f"{r['client_cpu_ms_per_answer']:.2f} | {r['connections']} ({r['connection']}) |")
    if args.compare_with:
        print_ratios(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

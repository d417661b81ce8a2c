"""Start real `cat-prom serve` processes (uvicorn + the Flask app) for tests and the benchmark; a tiny HTTP client."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m api.cli serve`` in its own process group (master + workers)."""

    def __init__(self, *, db_url: str, banks_dir, port: int | None = None, workers: int = 2, schema: str | None = None,
                 log_path=None, extra_env: dict | None = None, threads: int = 2):
        self.port = port or free_port()
        self.base = ("127.0.0.1", self.port)
        env = dict(os.environ)
        env.update({"CAT_PROM_DATABASE_URL": db_url, "CAT_PROM_BANKS_DIR": str(banks_dir),
                    "CAT_PROM_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                    # tests drive many requests with one key; the rate-limit tests set their own limits
                    "CAT_PROM_RATE_LIMIT_SESSIONS": "off", "CAT_PROM_RATE_LIMIT_ANSWERS": "off",
                    "CAT_PROM_RATE_LIMIT_AUTH_FAILURES": "off"})
        if schema:
            env["CAT_PROM_DATABASE_SCHEMA"] = schema
        env.pop("CAT_PROM_REDIS_URL", None)
        env.update(extra_env or {})
        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        # `cat-prom serve` exactly as users run it (cat_prom.cli wires in api.cli)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cat_prom.cli", "serve", "--port", str(self.port), "--workers", str(workers),
             "--threads", str(threads), "--no-bootstrap-keys"],
            cwd=str(REPO), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self._log()}")
            try:
                status, _ = request(self.base, "GET", "/readyz", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s; log: {self._log()}")

    def _log(self) -> str:
        if self.log_path and os.path.exists(self.log_path):
            return Path(self.log_path).read_text(errors="replace")[-3000:]
        return "(no log)"

    def kill9(self) -> None:
        """SIGKILL the whole process group: master and workers die at once, nothing is flushed."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()
            except ProcessLookupError:
                pass


def request(base, method, path, body=None, headers=None, timeout=10.0, conn=None):
    """One HTTP request; returns (status, parsed JSON or None)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(*base, timeout=timeout)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        if own:
            conn.close()
    return resp.status, (json.loads(raw) if raw else None)

"""The machine's PostgreSQL and Redis for the tests: reachable, or started when ``CI=true``.

PostgreSQL 15 and Redis run on the project's machines before a session starts. A service that has
stopped (a crash, a restart, a stray ``pkill``) would fail every test that needs it under
``CI=true``, so the test set-up first starts a stopped *local* service with the machine's own
command, the same way ``tests/browser/browserkit.py`` installs a missing chromium, and only then
fails with the reason. Outside CI a missing service skips its tests with a clear message, and
nothing is started. Servers named by ``CAT_PROM_TEST_PG_URL`` / ``CAT_PROM_TEST_REDIS_URL`` that
are not on this machine are never started, only reported.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("CAT_PROM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CAT_PROM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _local_port(url: str, default: int) -> int | None:
    parts = urlsplit(url.replace("+psycopg", ""))
    if (parts.hostname or "127.0.0.1") not in LOCAL_HOSTS:
        return None
    return parts.port or default


def pg_error(url: str = PG_URL) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None when a query succeeds."""
    try:
        import sqlalchemy as sa
        eng = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as e:  # noqa: BLE001 - reported to the caller
        return f"{type(e).__name__}: {e}"


def redis_error(url: str = REDIS_URL) -> str | None:
    """Why Redis at ``url`` cannot be used, or None when it answers PING."""
    try:
        import redis
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
        return None
    except Exception as e:  # noqa: BLE001 - reported to the caller
        return f"{type(e).__name__}: {e}"


def start_redis(port: int) -> str | None:
    """Start a Redis on 127.0.0.1:``port`` that keeps nothing on disk (the machine's own command).
    Returns why it could not be started, or None once the command ran."""
    exe = shutil.which("redis-server")
    if exe is None:
        return "redis-server is not installed"
    r = subprocess.run([exe, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
                        "--save", "", "--appendonly", "no", "--dir", "/tmp", "--logfile", ""],
                       capture_output=True, text=True, timeout=30)
    return None if r.returncode == 0 else f"redis-server exited {r.returncode}: {r.stderr.strip()[-300:]}"


def start_postgres() -> str | None:
    """Start the machine's PostgreSQL cluster (``pg_ctlcluster … main start``); None once started."""
    exe = shutil.which("pg_ctlcluster")
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if exe is None or not versions:
        return "no PostgreSQL cluster on this machine (pg_ctlcluster, /etc/postgresql)"
    r = subprocess.run([exe, "--skip-systemctl-redirect", versions[-1], "main", "start"],
                       capture_output=True, text=True, timeout=120)
    # 2: "Cluster is already running" (another test process started it first).
    return None if r.returncode in (0, 2) else f"pg_ctlcluster exited {r.returncode}: {r.stderr.strip()[-300:]}"


def require(name: str, url: str, err: str | None) -> str:
    """``url`` when ``err`` is None; else fail the test under ``CI=true`` (the service is required
    there) or skip it with the reason."""
    if err is None:
        return url
    import pytest
    if IN_CI:
        pytest.fail(f"{name} at {url} is required when CI=true but unreachable: {err}")
    pytest.skip(f"{name} at {url} unreachable ({err}); set CI=true to make this a failure")


def _wait(check, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    err = check()
    while err and time.monotonic() < deadline:
        time.sleep(0.5)
        err = check()
    return err


def ensure_pg(url: str = PG_URL) -> str | None:
    """None when PostgreSQL at ``url`` answers (after starting the local cluster under CI), else why not."""
    err = pg_error(url)
    if err and IN_CI and _local_port(url, 5432) is not None:
        why = start_postgres()
        err = _wait(lambda: pg_error(url), 60) if why is None else f"{err}; starting it failed: {why}"
    return err


def ensure_redis(url: str = REDIS_URL) -> str | None:
    """None when Redis at ``url`` answers (after starting a local one under CI), else why not."""
    err = redis_error(url)
    port = _local_port(url, 6379)
    if err and IN_CI and port is not None:
        why = start_redis(port)
        err = _wait(lambda: redis_error(url), 20) if why is None else f"{err}; starting it failed: {why}"
    return err

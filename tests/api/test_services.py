"""The test set-up's handling of the machine's services (tests/api/services.py).

A CI run once failed because the machine's Redis had stopped; under CI=true the set-up now starts a
stopped local Redis or PostgreSQL before giving up. These tests start a second Redis on a free port,
so the machine's own server is never touched."""
from __future__ import annotations

import shutil
import socket

import pytest

import services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shutdown(url: str) -> None:
    import redis
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).shutdown(nosave=True)
    except redis.exceptions.ConnectionError:
        pass  # the server closes the connection as it exits


needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def test_local_port_is_read_only_for_this_machine():
    assert services._local_port("redis://127.0.0.1:6390/0", 6379) == 6390
    assert services._local_port("redis://localhost/0", 6379) == 6379
    assert services._local_port("postgresql+psycopg://postgres@127.0.0.1/test", 5432) == 5432
    assert services._local_port("redis://cache.example.org:6379/0", 6379) is None
    assert services._local_port("postgresql+psycopg://u@db.example.org:5432/x", 5432) is None


@needs_redis_server
def test_a_stopped_local_redis_is_started_under_ci(monkeypatch):
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert services.redis_error(url) is not None  # nothing listens there yet
    monkeypatch.setattr(services, "IN_CI", True)
    try:
        assert services.ensure_redis(url) is None
        assert services.redis_error(url) is None
    finally:
        shutdown(url)
    assert services._wait(lambda: None if services.redis_error(url) else "up", 10) is None


@needs_redis_server
def test_outside_ci_nothing_is_started(monkeypatch):
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(services, "IN_CI", False)
    err = services.ensure_redis(url)
    assert err and "Connection" in err
    assert services.redis_error(url) is not None


def test_a_remote_server_is_never_started(monkeypatch):
    monkeypatch.setattr(services, "IN_CI", True)
    monkeypatch.setattr(services, "start_redis", lambda port: pytest.fail("must not start a remote server"))
    monkeypatch.setattr(services, "redis_error", lambda url: "ConnectionError: refused")
    assert services.ensure_redis("redis://cache.example.org:6379/0") == "ConnectionError: refused"

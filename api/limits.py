"""Rate limits (flask-limiter): per API key for starting sessions and posting answers, per client
address for failed authentication.

* ``CAT_PROM_RATE_LIMIT_SESSIONS`` (default ``10/second;300/minute``) and
  ``CAT_PROM_RATE_LIMIT_ANSWERS`` (``100/second;3000/minute``) count the requests of one API key
  (:func:`per_key` on the view, beneath :func:`api.keys.require`, so only authenticated requests
  count and the key's id is the counter's key).
* ``CAT_PROM_RATE_LIMIT_AUTH_FAILURES`` (``20/minute;100/hour``) counts the ``401`` answers sent
  to one client address, on every route; once it is spent that address gets ``429`` before its
  key is even looked at, whether the next key is right or wrong. The client address is the TCP
  peer, or with ``cat-prom serve --forwarded-allow-ips`` the ``X-Forwarded-For`` address set by
  one of those proxies.
* ``off`` turns a limit off. The notation is flask-limiter's (``N per second``, ``N/minute``,
  several separated by ``;``); the counting is a sliding window (a weighted pair of fixed windows:
  no burst of twice the limit across a window boundary, one counter per window in storage).
* Counters live in Redis when ``CAT_PROM_REDIS_URL`` is set, so every worker and host shares
  them; otherwise in each worker process's memory (so with N workers a client can get up to N
  times a limit). If Redis becomes unreachable the workers fall back to memory, log it, and
  return to Redis when it is back: the service keeps serving.

A limit that is hit is ``429`` ``too-many-requests`` with ``Retry-After`` (seconds), mapped in
:mod:`api.problems` like every other error.
"""
from __future__ import annotations

import math
import time

from flask import Flask, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from limits.storage import MemoryStorage

#: limit name -> (setting, what is counted, for the problem detail)
LIMITS = {
    "sessions": ("CAT_PROM_RATE_LIMIT_SESSIONS", "sessions started with this API key"),
    "answers": ("CAT_PROM_RATE_LIMIT_ANSWERS", "answers posted with this API key"),
    "auth-failures": ("CAT_PROM_RATE_LIMIT_AUTH_FAILURES", "failed authentications from this address"),
}
#: Routes no limit applies to (probes; the reference and the OpenAPI document never answer 401).
_EXEMPT_ENDPOINTS = frozenset({"health.healthz", "health.readyz"})


def _value(name: str) -> str:
    value = current_app.config.get(LIMITS[name][0]) or "off"
    return "1/second" if _off(value) else value  # never used when off (exempt)


def _off(value) -> bool:
    return str(value).strip().lower() in ("off", "none", "0", "")


def _disabled(name: str) -> bool:
    return _off(current_app.config.get(LIMITS[name][0]))


def _message(name: str):
    return lambda: f"{LIMITS[name][1]}: at most {_value(name).replace(';', ' and ')}"


class _MemoryStorage(MemoryStorage):
    """limits' in-memory storage, minus a thread per request: the original starts a new
    ``threading.Timer`` (a thread) to sweep expired counters on every hit that comes more than
    10 ms after the previous one, which cost ~0.2 ms of CPU per limited request here. Counters
    expire lazily on read anyway (``MemoryStorage.get``); this sweeps the rest inline, at most once
    a second. tests/api/test_rate_limits.py checks that no timer is started per hit, so an upgrade
    of limits that renames the hook is noticed."""

    STORAGE_SCHEME = ["cat-prom-memory"]
    _last_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides the name-mangled hook
        now = time.monotonic()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._MemoryStorage__expire_events()


# One limiter for the process, bound to the app by init_app (flask-limiter's pattern): route
# decorators need it at import time. Everything but the storage is fixed here, not per app.
limiter = Limiter(
    key_func=get_remote_address,
    strategy="sliding-window-counter",
    key_prefix="cat-prom",
    headers_enabled=False,
    swallow_errors=True,  # a storage error is logged, never a 500 ...
    in_memory_fallback_enabled=True,  # ... and the limits go on in memory until Redis is back
    application_limits=[ApplicationLimit(
        lambda: _value("auth-failures"), error_message=_message("auth-failures"),
        deduct_when=lambda response: response.status_code == 401,
        exempt_when=lambda: _disabled("auth-failures") or request.endpoint in _EXEMPT_ENDPOINTS)],
)


def per_key(name: str):
    """View decorator: count this route's requests per API key under limit ``name``; put it below
    :func:`api.keys.require` (the key must be known)."""
    return limiter.limit(lambda: _value(name), key_func=lambda: g.principal.key_id, scope=name,
                         error_message=_message(name), exempt_when=lambda: _disabled(name))


def init_app(app: Flask) -> None:
    """Bind the limiter to ``app`` with its storage (Redis when ``CAT_PROM_REDIS_URL`` is set)."""
    for name, (setting, _) in LIMITS.items():
        value = app.config.get(setting)
        if not _off(value):
            _check(setting, value)
    app.config["RATELIMIT_STORAGE_URI"] = app.config.get("CAT_PROM_REDIS_URL") or "cat-prom-memory://"
    limiter.init_app(app)


def _check(setting: str, value: str) -> None:
    from limits import parse_many
    try:
        parse_many(value)
    except ValueError:
        raise SystemExit(f"configuration error: {setting}={value!r} is not a rate limit such as "
                         f"'10/second;300/minute' (or 'off')") from None


def retry_after_seconds() -> int:
    """Whole seconds until the limit that was just hit lets a request through again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    return max(1, math.ceil(current.reset_at - time.time()))


def describe_breach(description: str | None) -> str:
    """The detail of a 429: which limit, and when to retry."""
    return f"Too many requests ({description or 'rate limit'}); retry after {retry_after_seconds()} s."

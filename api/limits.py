"""Rate limits: per API key for starting sessions and posting answers, per client address for
failed authentication.

* ``CAT_PROM_RATE_LIMIT_SESSIONS`` (default ``10/second;300/minute``) and
  ``CAT_PROM_RATE_LIMIT_ANSWERS`` (``100/second;3000/minute``) count the requests of one API key
  (:func:`per_key` on the view, beneath :func:`api.keys.require`, so only authenticated requests
  count and the key's id is the counter's key).
* ``CAT_PROM_RATE_LIMIT_AUTH_FAILURES`` (``20/minute;100/hour``) counts the ``401`` answers sent
  to one client address, on every route; once it is spent that address gets ``429`` before its
  key is even looked at, whether the next key is right or wrong. The client address is the TCP
  peer, or with ``cat-prom serve --forwarded-allow-ips`` the ``X-Forwarded-For`` address set by
  one of those proxies.
* ``off`` turns a limit off. The notation is the ``limits`` library's (``N per second``,
  ``N/minute``, several separated by ``;``); the counting is its sliding window counter (a weighted
  pair of fixed windows: no burst of twice the limit across a window boundary, one counter per
  window in storage).
* Counters live in Redis when ``CAT_PROM_REDIS_URL`` is set, so every worker and host shares
  them; otherwise in each worker process's memory (so with N workers a client can get up to N
  times a limit). If Redis becomes unreachable the workers count in memory, log it, and return to
  Redis once it answers again: the service keeps serving.

A limit that is hit is ``429`` ``too-many-requests`` with ``Retry-After`` (seconds).

Why ``limits`` directly rather than through flask-limiter's decorators and hooks: the counting,
the notation and the storage backends are the same library (flask-limiter is its Flask layer, by
the same maintainers), but flask-limiter resolves, filters and evaluates every limit of every
route on every request. Measured on this project's VM (2026-11-26, `benchmarks/rate_limit_overhead.py`:
Flask test client, a trivial route with one per-key limit and the per-address limit, least of 5
interleaved rounds of 3,000 requests): 258 µs of CPU per request through flask-limiter, 58 µs with
the same two limits counted here — a tenth of an answer's whole cost saved.
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from .problems import Problem

log = logging.getLogger("cat_prom.api.limits")

#: limit name -> (setting, what is counted, for the problem detail)
LIMITS = {
    "sessions": ("CAT_PROM_RATE_LIMIT_SESSIONS", "sessions started with this API key"),
    "answers": ("CAT_PROM_RATE_LIMIT_ANSWERS", "answers posted with this API key"),
    "auth-failures": ("CAT_PROM_RATE_LIMIT_AUTH_FAILURES", "failed authentications from this address"),
}
#: Routes no limit applies to (probes; the reference and the OpenAPI document never answer 401).
_EXEMPT_ENDPOINTS = frozenset({"health.healthz", "health.readyz"})
#: Prefix of every counter's key (in Redis: ``LIMITER/cat-prom/<identity>/<limit>/...``).
KEY_PREFIX = "cat-prom"
#: Seconds between attempts to go back to Redis after it failed.
RETRY_PRIMARY_S = 2.0


class _MemoryStorage(MemoryStorage):
    """limits' in-memory storage, minus a thread per request: the original starts a new
    ``threading.Timer`` (a thread) to sweep expired counters on every hit that comes more than
    10 ms after the previous one, which cost ~0.2 ms of CPU per limited request here. Counters
    expire lazily on read anyway (``MemoryStorage.get``); this sweeps the rest inline, at most once
    a second. tests/api/test_rate_limits.py checks that no timer is started per hit, so an upgrade
    of limits that renames the hook is noticed."""

    _last_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides the name-mangled hook
        now = time.monotonic()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._MemoryStorage__expire_events()


def _off(value) -> bool:
    return str(value).strip().lower() in ("off", "none", "0", "")


def parse_limit(setting: str, value) -> tuple[RateLimitItem, ...]:
    """A setting's limits (empty when ``off``); a malformed value is a configuration error."""
    if value is None or _off(value):
        return ()
    try:
        return tuple(parse_many(str(value)))
    except ValueError:
        raise SystemExit(f"configuration error: {setting}={value!r} is not a rate limit such as "
                         f"'10/second;300/minute' (or 'off')") from None


class RateLimits:
    """The app's three limits and their counters (Redis when configured, with a memory fallback)."""

    def __init__(self, config: dict):
        self.settings = {name: str(config.get(setting) or "off").strip() for name, (setting, _) in LIMITS.items()}
        self.items = {name: parse_limit(LIMITS[name][0], config.get(LIMITS[name][0]))
                      for name in LIMITS}
        self.memory = SlidingWindowCounterRateLimiter(_MemoryStorage())
        url = config.get("CAT_PROM_REDIS_URL")
        self.primary = SlidingWindowCounterRateLimiter(storage_from_string(url)) if url else None
        self._primary_failed_at: float | None = None
        self._lock = threading.Lock()

    def enabled(self, name: str) -> bool:
        return bool(self.items[name])

    # ------------------------------------------------------------ storage, with the memory fallback
    def _call(self, method: str, item: RateLimitItem, ids: tuple[str, ...]):
        primary = self.primary
        if primary is not None:
            failed = self._primary_failed_at
            if failed is None or time.monotonic() - failed >= RETRY_PRIMARY_S:
                try:
                    out = getattr(primary, method)(item, *ids)
                except Exception as e:  # noqa: BLE001 - any storage error: count in memory instead
                    with self._lock:
                        if self._primary_failed_at is None:
                            log.warning("rate limit storage unreachable (%s); counting in memory until it is back",
                                        type(e).__name__)
                        self._primary_failed_at = time.monotonic()
                else:
                    if failed is not None:
                        with self._lock:
                            self._primary_failed_at = None
                        log.info("rate limit storage reachable again")
                    return out
        return getattr(self.memory, method)(item, *ids)

    # ------------------------------------------------------------------------------- the checks
    def hit(self, name: str, identity: str) -> None:
        """Count one request of ``identity`` under limit ``name``; 429 when it is spent."""
        self._apply("hit", name, identity)

    def check(self, name: str, identity: str) -> None:
        """429 when ``identity`` has spent limit ``name`` (nothing is counted)."""
        self._apply("test", name, identity)

    def _apply(self, method: str, name: str, identity: str) -> None:
        ids = (KEY_PREFIX, identity, name)
        for item in self.items[name]:
            if not self._call(method, item, ids):
                raise self._problem(name, item, ids)

    def _problem(self, name: str, item: RateLimitItem, ids: tuple[str, ...]) -> Problem:
        """The 429 for a spent limit, with when to retry."""
        try:
            reset_at = self._call("get_window_stats", item, ids).reset_time
        except Exception:  # noqa: BLE001 - the estimate is advisory
            reset_at = time.time() + item.get_expiry()
        retry = max(1, math.ceil(reset_at - time.time()))
        return Problem("too-many-requests",
                       f"Too many requests ({LIMITS[name][1]}: at most {self.settings[name].replace(';', ' and ')}); "
                       f"retry after {retry} s.", headers={"Retry-After": str(retry)})


def _limits() -> RateLimits:
    return current_app.extensions["cat_prom_limits"]


def per_key(name: str):
    """View decorator: count this route's requests per API key under limit ``name``; put it below
    :func:`api.keys.require` (the key must be known)."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            limits = _limits()
            if limits.enabled(name):
                limits.hit(name, g.principal.key_id)
            return fn(*args, **kwargs)
        return wrapper
    return deco


def _client_address() -> str:
    return request.remote_addr or "-"


def init_app(app: Flask) -> None:
    """Bind the limits to ``app`` (Redis when ``CAT_PROM_REDIS_URL`` is set)."""
    limits = RateLimits(app.config)
    app.extensions["cat_prom_limits"] = limits
    if not limits.enabled("auth-failures"):
        return

    @app.before_request
    def _refuse_spent_addresses():
        if request.endpoint not in _EXEMPT_ENDPOINTS:
            limits.check("auth-failures", _client_address())

    @app.after_request
    def _count_failed_authentication(resp):
        if resp.status_code == 401:
            try:
                limits.hit("auth-failures", _client_address())
            except Problem:
                pass  # this 401 spent the limit: the next request from the address gets 429
        return resp

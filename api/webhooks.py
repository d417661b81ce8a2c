"""Webhook signatures and the one HTTP POST the worker makes.

Every delivery carries ``X-Cat-Prom-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256 with the endpoint's secret over ``"<t>.<body>"`` (the exact body bytes). A receiver
recomputes it, compares in constant time and rejects timestamps far from its clock (replays);
:func:`verify` is that check, for receivers written in Python. The body is JSON with ids and
scores only (never answers); ``alert_id`` is unique per alert, so a receiver that remembers the ids
it has processed acts on each alert once even when a delivery is repeated after a crash.
"""
from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Cat-Prom-Signature"
EVENT_HEADER = "X-Cat-Prom-Event"
DELIVERY_HEADER = "X-Cat-Prom-Delivery"
USER_AGENT = "cat-prom-webhooks/1"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    """True if ``header`` is a valid signature of ``body`` made within ``tolerance_s`` of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer, not a delivery
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, *, secret: str, event: str, delivery_id: int, timeout_s: float) -> Outcome:
    """POST ``body`` signed with ``secret``; never raises for network or HTTP failures."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: event,
               DELIVERY_HEADER: str(delivery_id), SIGNATURE_HEADER: sign(secret, body, int(time.time()))}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    t0 = time.perf_counter()
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            resp.read(65536)
            code, err = resp.status, None
    except urllib.error.HTTPError as e:
        code, err = e.code, None
    except (urllib.error.URLError, OSError, ValueError) as e:  # refused, timeout, DNS, bad URL
        reason = getattr(e, "reason", e)
        code, err = None, f"{type(reason).__name__}: {reason}"[:300]
    return Outcome(code, err, (time.perf_counter() - t0) * 1000)


def backoff_s(attempt: int, *, base_s: float, max_s: float) -> float:
    """Seconds before retry number ``attempt + 1``: ``base · 2^(attempt-1)``, at most ``max_s``."""
    return min(max_s, base_s * 2 ** max(0, attempt - 1))

"""API keys: creation, hashing, lookup, revocation and the ``require`` guard.

A key is ``cpk_`` followed by 43 URL-safe random characters (256 bits). Only
its SHA-256 — an HMAC-SHA256 under ``CAT_PROM_SECRET_KEY`` when that is set —
is stored, so a copy of the database does not give access. Keys are high
entropy, so a fast hash is the right tool (a password KDF would only cost
latency on every request).
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from flask import current_app, g, request

from .store import KeyRecord, SessionStore, utcnow
from .problems import Problem

ROLES = ("patient-app", "clinician", "researcher", "admin")
KEY_PREFIX = "cpk_"
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    role: str
    name: str
    expires_at: dt.datetime | None = None


#: last_used_at is written at most this often per key (and per worker process): the answer route pays a
#: dictionary lookup, not a write, on almost every request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
MAX_KEY_DAYS = 3650


def hash_key(secret: str, pepper: str | None) -> str:
    data = secret.encode("utf-8", "surrogatepass")
    if pepper:
        return hmac.new(pepper.encode(), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def validate_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant):
        raise ValueError(f"tenant {tenant!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                         f"letter or digit")
    return tenant


def key_expiry(expires_at: dt.datetime | None = None, expires_in_days: int | None = None,
               now: dt.datetime | None = None) -> dt.datetime | None:
    """The expiry of a new key from at most one of ``expires_at`` (aware, in the future) and
    ``expires_in_days`` (1..3650); None: the key does not expire."""
    now = now or utcnow()
    if expires_at is not None and expires_in_days is not None:
        raise ValueError("give expires_at or expires_in_days, not both")
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) \
                or not 1 <= expires_in_days <= MAX_KEY_DAYS:
            raise ValueError(f"expires_in_days must be a whole number of days from 1 to {MAX_KEY_DAYS}")
        return now + dt.timedelta(days=expires_in_days)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone offset (e.g. 2027-01-31T00:00:00Z)")
        if expires_at <= now:
            raise ValueError("expires_at must be in the future")
        if expires_at > now + dt.timedelta(days=MAX_KEY_DAYS):
            raise ValueError(f"expires_at must be within {MAX_KEY_DAYS} days")
        return expires_at.astimezone(dt.timezone.utc)
    return None


def create_key(store: SessionStore, *, role: str, name: str, tenant: str = "default",
               pepper: str | None = None, expires_at: dt.datetime | None = None) -> dict:
    """Create a key; returns its public fields plus ``key`` (the only time the secret is available).
    ``expires_at``: from :func:`key_expiry` (None: never)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    validate_tenant(tenant)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValueError("name must be 1-200 characters")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    rec = KeyRecord(id="key_" + secrets.token_hex(8), tenant=tenant, name=name.strip(), role=role,
                    key_hash=hash_key(secret, pepper), created_at=utcnow(), revoked_at=None, expires_at=expires_at)
    store.insert_key(rec)
    out = _public(rec)
    out["key"] = secret
    return out


def list_keys(store: SessionStore, tenant: str | None = None, include_revoked: bool = True) -> list[dict]:
    return [_public(r) for r in store.list_keys(tenant, include_revoked)]


def revoke_key(store: SessionStore, key_id: str, tenant: str | None = None) -> dict | None:
    """Revoke a key (idempotent). Returns the key, or None when there is no such key (in the tenant)."""
    rec = store.revoke_key(key_id, tenant, utcnow())
    _CACHE.clear()
    return None if rec is None else _public(rec)


def has_expired(public: dict) -> bool:
    """Whether a key as :func:`list_keys` shows it has expired."""
    return public["expires_at"] is not None and dt.datetime.fromisoformat(public["expires_at"]) <= utcnow()


def count_active_keys(store: SessionStore) -> int:
    return store.count_active_keys()


def _public(rec: KeyRecord) -> dict:
    return {"id": rec.id, "tenant": rec.tenant, "name": rec.name, "role": rec.role,
            "created_at": rec.created_at.isoformat(),
            "revoked_at": rec.revoked_at.isoformat() if rec.revoked_at else None,
            "expires_at": rec.expires_at.isoformat() if rec.expires_at else None,
            "last_used_at": rec.last_used_at.isoformat() if rec.last_used_at else None}


# ------------------------------------------------------------------ request guard
class _KeyCache:
    """Verified keys per worker for a few seconds (``CAT_PROM_KEY_CACHE_TTL``); revocation
    made by another process takes effect within that time."""

    def __init__(self, max_size: int = 4096):
        self._d: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self.max_size = max_size

    def get(self, h: str, ttl: float) -> Principal | None:
        hit = self._d.get(h)
        if hit is None or time.monotonic() - hit[0] > ttl:
            return None
        return hit[1]

    def put(self, h: str, p: Principal) -> None:
        with self._lock:
            if len(self._d) >= self.max_size:
                self._d.clear()
            self._d[h] = (time.monotonic(), p)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


_CACHE = _KeyCache()


def authenticate() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem("unauthorized", "Send your API key as `Authorization: Bearer <key>`.",
                      headers={"WWW-Authenticate": 'Bearer realm="cat-prom"'})
    p = _principal(token)
    if p is None:
        raise _invalid()
    if _expired(p):
        raise Problem("unauthorized", f"The API key expired at {p.expires_at.isoformat()}; ask an admin for a new "
                                      f"one.", headers={"WWW-Authenticate": 'Bearer realm="cat-prom", '
                                                                           'error="invalid_token"'})
    note_use(p)
    return p


def _expired(p: Principal) -> bool:
    return p.expires_at is not None and utcnow() >= p.expires_at


_LAST_TOUCH: dict[str, float] = {}


def note_use(p: Principal) -> None:
    """Record the key's use, at most once per :data:`LAST_USED_RESOLUTION` per key in this process."""
    now = time.monotonic()
    last = _LAST_TOUCH.get(p.key_id)
    if last is not None and now - last < LAST_USED_RESOLUTION.total_seconds():
        return
    _LAST_TOUCH[p.key_id] = now  # a lost race costs one more (conditional) write, never a wrong value
    if len(_LAST_TOUCH) > 100_000:
        _LAST_TOUCH.clear()
    current_app.extensions["cat_prom"].store.touch_key(p.key_id, utcnow(), LAST_USED_RESOLUTION)


def verify_key(token: str) -> Principal | None:
    """The principal of a valid, unrevoked, unexpired key; None otherwise (also used by the clinician
    sign-in page)."""
    p = _principal(token)
    return None if p is None or _expired(p) else p


def _principal(token: str) -> Principal | None:
    if len(token) > 200 or not token.startswith(KEY_PREFIX):
        return None
    cfg = current_app.config
    h = hash_key(token, cfg.get("CAT_PROM_SECRET_KEY"))
    ttl = cfg.get("CAT_PROM_KEY_CACHE_TTL", 2.0)
    p = _CACHE.get(h, ttl) if ttl > 0 else None
    if p is None:
        row = current_app.extensions["cat_prom"].store.key_by_hash(h)
        if row is None or row.revoked_at is not None:
            return None
        p = Principal(row.id, row.tenant, row.role, row.name, row.expires_at)
        if ttl > 0:
            _CACHE.put(h, p)
    return p


def _invalid() -> Problem:
    return Problem("unauthorized", "The API key is not valid or has been revoked.",
                   headers={"WWW-Authenticate": 'Bearer realm="cat-prom", error="invalid_token"'})


def require(*roles: str):
    """View decorator: a valid key whose role is one of ``roles``; sets ``g.principal``."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            p = authenticate()
            if p.role not in roles:
                raise Problem("forbidden", f"This endpoint needs a key with role {' or '.join(roles)}; "
                                           f"this key has role {p.role}.")
            g.principal = p
            return fn(*args, **kwargs)
        wrapper._roles = roles
        return wrapper
    return deco

"""Who may see a page: patient link tokens and clinician browser sessions (use cases, no SQL).

A **link token** (``cpl_`` + 43 URL-safe random characters, 256 bits) opens one patient's one
sitting at ``/take/<token>`` and nothing else: it is not an API key (the ``Bearer`` guard
accepts only ``cpk_`` keys), it names no session or patient in the URL, and only its hash is
stored (HMAC-SHA256 under ``CAT_PROM_SECRET_KEY`` when set, like API keys). It expires at a
fixed time and can be revoked.

A **clinician web session** is what a clinician key is exchanged for at sign-in: a random
cookie value (only its hash stored) that expires after ``CAT_PROM_WEB_SESSION_TTL`` seconds, ends
at sign-out, and stops working as soon as the key is revoked.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from flask import current_app, g

from ..keys import Principal, hash_key, note_use, verify_key
from ..problems import Problem
from ..service import iso
from ..store import utcnow
from ..store.pages import LinkRecord

LINK_PREFIX = "cpl_"
COOKIE_NAME = "cp_clinician"


def _ext():
    return current_app.extensions["cat_prom"]


def _hash(secret: str) -> str:
    return hash_key(secret, current_app.config.get("CAT_PROM_SECRET_KEY"))


# ------------------------------------------------------------------ link tokens
def create_link(principal: Principal, patient_ref: str, args: dict, url_for_token) -> dict:
    """Start the patient's sitting and make the link to it. ``args``: battery or banks (+ expires_at)."""
    svc = _ext().sessions
    body = {k: v for k, v in args.items() if k != "expires_at"}
    body["patient"] = patient_ref
    now = utcnow()
    latest = now + svc.ttl
    expires_at = args.get("expires_at") or latest
    if expires_at.tzinfo is None:
        raise Problem("validation-error", "`expires_at` needs a time zone (e.g. 2026-12-01T12:00:00Z).",
                      errors={"expires_at": ["needs a time zone"]})
    if expires_at <= now or expires_at > latest + dt.timedelta(seconds=1):
        raise Problem("validation-error", f"`expires_at` must be in the future and at most "
                      f"{int(svc.ttl.total_seconds() // 3600)} hours away (the sitting's own expiry).",
                      errors={"expires_at": ["out of range"]})
    view = svc.create(principal.tenant, body)
    sid = view["id"]
    token = LINK_PREFIX + secrets.token_urlsafe(32)
    rec = _ext().store.insert_link({
        "id": "lnk_" + secrets.token_hex(8), "tenant": principal.tenant, "patient_ref": patient_ref,
        "session_id": sid, "token_hash": _hash(token), "created_by": principal.key_id, "created_at": now,
        "expires_at": expires_at, "revoked_at": None})
    out = link_view(rec)
    out.update(url=url_for_token(token), battery=view["battery"], banks=view["banks"])
    return out


def link_view(rec: LinkRecord) -> dict:
    return {"id": rec.id, "patient": rec.patient_ref, "session_id": rec.session_id,
            "created_at": iso(rec.created_at), "expires_at": iso(rec.expires_at), "revoked_at": iso(rec.revoked_at)}


def revoke_link(principal: Principal, patient_ref: str, link_id: str) -> dict:
    rec = _ext().store.revoke_link(principal.tenant, patient_ref, link_id, utcnow())
    if rec is None:
        raise Problem("link-not-found", "No link with this id for this patient in your API key's tenant.")
    return link_view(rec)


@dataclass(frozen=True)
class LinkState:
    """What a token opens: the link, or why it opens nothing (``reason``: unknown, revoked, expired)."""

    link: LinkRecord | None
    reason: str | None


def resolve_link(token: str) -> LinkState:
    if not token.startswith(LINK_PREFIX) or len(token) > 100:
        return LinkState(None, "unknown")
    rec = _ext().store.link_by_token_hash(_hash(token))
    if rec is None:
        return LinkState(None, "unknown")
    if rec.revoked_at is not None:
        return LinkState(None, "revoked")
    if utcnow() >= rec.expires_at:
        return LinkState(None, "expired")
    return LinkState(rec, None)


# ------------------------------------------------------- clinician web sessions
def sign_in(secret: str) -> tuple[str, dt.datetime] | None:
    """Exchange a clinician key for a browser session: (cookie value, expiry), or None if not valid."""
    p = verify_key(secret.strip())
    if p is None or p.role != "clinician":
        return None
    value = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + dt.timedelta(seconds=current_app.config["CAT_PROM_WEB_SESSION_TTL"])
    _ext().store.insert_web_session({"id": "ws_" + secrets.token_hex(8), "token_hash": _hash(value),
                                         "key_id": p.key_id, "created_at": now, "expires_at": expires,
                                         "ended_at": None})
    return value, expires


def web_principal(cookie_value: str | None) -> Principal | None:
    """The clinician behind a session cookie, or None (no cookie, unknown, ended, expired, key revoked)."""
    if not cookie_value or len(cookie_value) > 100:
        return None
    rec = _ext().store.web_session_by_token_hash(_hash(cookie_value))
    if rec is None or rec.ended_at is not None or rec.key_revoked or utcnow() >= rec.expires_at:
        return None
    if rec.role != "clinician":
        return None
    g.web_session_id = rec.id  # the audit log names the browser session as well as its key
    p = Principal(rec.key_id, rec.tenant, rec.role, rec.name)
    note_use(p)
    return p


def sign_out(cookie_value: str | None) -> None:
    if cookie_value and len(cookie_value) <= 100:
        _ext().store.end_web_session(_hash(cookie_value), utcnow())


def clinician_from_request(request) -> Principal | None:
    """A clinician behind this request: a bearer key (apps) or a browser sign-in cookie, else None.
    A bearer key of another role is refused (403), as on every clinician route."""
    from ..keys import authenticate

    if request.headers.get("Authorization"):
        p = authenticate()
        if p.role != "clinician":
            raise Problem("forbidden", f"This endpoint needs a key with role clinician; this key has role {p.role}.")
    else:
        p = web_principal(request.cookies.get(COOKIE_NAME))
    g.principal = p  # the audit log's actor
    return p

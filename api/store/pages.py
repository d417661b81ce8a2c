"""SQL for the pages: patient link tokens and clinicians' browser sessions.

``patient_links``  one row per link a patient app or clinician made for one patient's sitting.
                   Only a hash of the link's token is stored (like API keys), so a copy of the
                   database opens no sitting. A link reaches exactly one session.
``web_sessions``   one row per clinician browser sign-in: a hash of the cookie's random value,
                   the API key it was exchanged for (revoking the key ends the session), expiry
                   and sign-out time.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from .engine import as_utc, utcnow
from .tables import api_keys, metadata

patient_links = sa.Table(
    "patient_links", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_patient_links_tenant_patient", "tenant", "patient_ref"),
)

web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_id", sa.String(40), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class LinkRecord:
    id: str
    tenant: str
    patient_ref: str
    session_id: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class WebSessionRecord:
    id: str
    key_id: str
    tenant: str
    role: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime
    ended_at: dt.datetime | None
    key_revoked: bool  #: revoked or expired: either ends the web session


def _link(row) -> LinkRecord:
    m = row._mapping
    return LinkRecord(m["id"], m["tenant"], m["patient_ref"], m["session_id"], m["created_by"],
                      as_utc(m["created_at"]), as_utc(m["expires_at"]), as_utc(m["revoked_at"]))


class PageQueries:
    """Patient links and clinician web sessions. Mixed into :class:`api.store.SessionStore`."""

    def insert_link(self, row: dict) -> LinkRecord:
        with self.write() as conn:
            conn.execute(patient_links.insert().values(**row))
        return _link(_Row(row))

    def link_by_token_hash(self, token_hash: str) -> LinkRecord | None:
        with self.read(snapshot=False) as conn:
            row = conn.execute(sa.select(patient_links).where(patient_links.c.token_hash == token_hash)).first()
        return _link(row) if row is not None else None

    def revoke_link(self, tenant: str, patient_ref: str, link_id: str, now: dt.datetime) -> LinkRecord | None:
        """Revoke (idempotent); None when the tenant has no such link for this patient."""
        cond = sa.and_(patient_links.c.id == link_id, patient_links.c.tenant == tenant,
                       patient_links.c.patient_ref == patient_ref)
        with self.write() as conn:
            conn.execute(patient_links.update().where(cond, patient_links.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            row = conn.execute(sa.select(patient_links).where(cond)).first()
        return _link(row) if row is not None else None

    def insert_web_session(self, row: dict) -> None:
        with self.write() as conn:
            conn.execute(web_sessions.insert().values(**row))

    def web_session_by_token_hash(self, token_hash: str) -> WebSessionRecord | None:
        q = (sa.select(web_sessions, api_keys.c.tenant, api_keys.c.role, api_keys.c.name,
                       api_keys.c.revoked_at.label("key_revoked_at"), api_keys.c.expires_at.label("key_expires_at"))
             .join(api_keys, api_keys.c.id == web_sessions.c.key_id)
             .where(web_sessions.c.token_hash == token_hash))
        with self.read(snapshot=False) as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        m = row._mapping
        key_expired = m["key_expires_at"] is not None and as_utc(m["key_expires_at"]) <= utcnow()
        return WebSessionRecord(m["id"], m["key_id"], m["tenant"], m["role"], m["name"], as_utc(m["created_at"]),
                                as_utc(m["expires_at"]), as_utc(m["ended_at"]),
                                m["key_revoked_at"] is not None or key_expired)

    def end_web_session(self, token_hash: str, now: dt.datetime) -> None:
        with self.write() as conn:
            conn.execute(web_sessions.update().where(web_sessions.c.token_hash == token_hash,
                                                     web_sessions.c.ended_at.is_(None)).values(ended_at=now))


class _Row:
    """A dict seen through the ``row._mapping`` interface (for records built from inserted values)."""

    def __init__(self, d: dict):
        self._mapping = d

"""SQL for the audit log: who read or changed which patient's data, when, through which route.

``audit_log`` is append-only: the store has an insert, a query and, for erasure only,
:meth:`AuditQueries.pseudonymise_audit`, which replaces one patient's reference by a keyed hash
(``erased:<hmac>``) and changes nothing else. Rows never hold answers, scores or request bodies:
only the actor, the action, the patient reference, the route *template* and the status.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from .engine import as_utc
from .tables import metadata

_TS = sa.DateTime(timezone=True)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", _TS, nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(40), nullable=True),           # the API key (also behind a web session)
    sa.Column("role", sa.String(20), nullable=False),            # the key's role, or "link" for a link token
    sa.Column("web_session_id", sa.String(40), nullable=True),   # a clinician's browser sign-in
    sa.Column("link_id", sa.String(40), nullable=True),          # a patient's link token
    sa.Column("action", sa.String(16), nullable=False),          # read|create|update|delete|export|erase
    sa.Column("patient_ref", sa.String(200), nullable=True),     # None: the request named no patient
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),          # the route template, never the URL
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Index("ix_audit_tenant_at", "tenant", "at"),
    sa.Index("ix_audit_tenant_patient", "tenant", "patient_ref", "at"),
    sa.Index("ix_audit_tenant_key", "tenant", "key_id", "at"),
)

_INSERT = audit_log.insert()
_COLUMNS = [c.name for c in audit_log.columns if c.name != "id"]


def audit_params(row: dict) -> dict:
    """One audit row as the bind parameters of :func:`insert_audit_from` (``a_<column>``)."""
    return {"a_" + c: row.get(c) for c in _COLUMNS}


def insert_audit_from(source) -> sa.Insert:
    """``INSERT INTO audit_log SELECT <one row of a_* parameters> FROM source``: the audit row is
    written if and only if ``source`` (a CTE of the change it records) yields a row. Used inside
    the statement that makes the change, so that both commit together in one round trip."""
    cols = audit_log.c
    return audit_log.insert().from_select(
        _COLUMNS, sa.select(*[sa.bindparam("a_" + c, type_=cols[c].type) for c in _COLUMNS]).select_from(source))


def insert_audit(conn, rows: list[dict]) -> None:
    """Append audit rows in the caller's transaction (the change they record commits with them)."""
    if rows:
        params = [{c: r.get(c) for c in _COLUMNS} for r in rows]
        conn.execute(_INSERT, params[0] if len(params) == 1 else params)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    tenant: str
    key_id: str | None
    role: str
    web_session_id: str | None
    link_id: str | None
    action: str
    patient_ref: str | None
    method: str
    route: str
    status: int
    request_id: str


class AuditQueries:
    """The audit log. Mixed into :class:`api.store.SessionStore`."""

    def append_audit(self, rows: list[dict]) -> None:
        """Append rows (each with every column but ``id``); one statement, autocommitted."""
        if not rows:
            return
        with self.autocommit() as conn:
            # one row (nearly every request): a plain execute, which SQLAlchemy's compiled cache serves;
            # several (lists of patients): one executemany
            insert_audit(conn, rows)

    def list_audit(self, tenant: str, *, patient: str | None = None, key_id: str | None = None,
                   action: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                   limit: int = 100, after_id: int | None = None) -> list[AuditRecord]:
        """Rows of a tenant, oldest first, filtered; ``after_id`` continues from a previous page."""
        c = audit_log.c
        q = sa.select(audit_log).where(c.tenant == tenant).order_by(c.id).limit(limit)
        if patient is not None:
            q = q.where(c.patient_ref == patient)
        if key_id is not None:
            q = q.where(c.key_id == key_id)
        if action is not None:
            q = q.where(c.action == action)
        if since is not None:
            q = q.where(c.at >= since)
        if until is not None:
            q = q.where(c.at < until)
        if after_id is not None:
            q = q.where(c.id > after_id)
        with self.read() as conn:
            return [AuditRecord(**{**r._mapping, "at": as_utc(r.at)}) for r in conn.execute(q)]

    def pseudonymise_audit(self, conn, tenant: str, patient: str, pseudonym: str) -> int:
        """Erasure's one change to the log (inside the erasure's transaction): the patient's
        reference becomes ``pseudonym``; every other field stays."""
        return conn.execute(audit_log.update().where(audit_log.c.tenant == tenant, audit_log.c.patient_ref == patient)
                            .values(patient_ref=pseudonym)).rowcount

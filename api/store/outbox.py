"""Webhook endpoints, the alert outbox and its delivery log: the tables and every statement on them.

``webhook_endpoints``  a tenant's receivers (admin): URL, the HMAC secret, active flag.
``outbox``             one row per (alert event, active endpoint), written in the SAME transaction
                       as the finishing answer that raised the alert (:func:`enqueue`), so an alert
                       is either stored with its outbox rows or not at all.
``deliveries``         one row per delivery attempt: status code or error, duration.

Delivery is at-least-once with a lease: a worker claims due rows in a short transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers never claim the same row;
``BEGIN IMMEDIATE`` on SQLite, one writer at a time), sets ``claimed_until = now + lease``
and commits; it then POSTs outside any transaction and records the outcome. A worker killed
mid-delivery leaves its rows claimed until the lease ends, when another worker (or the
restarted one) delivers them again: nothing is lost, and a receiver that keeps the alert id
it has seen (each alert is in one outbox row per endpoint) never acts on it twice.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .engine import as_utc
from .tables import metadata

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

webhook_endpoints = sa.Table(
    "webhook_endpoints", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("description", sa.String(200), nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("endpoint_id", sa.String(40), sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("alert_id", sa.String(40), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.UniqueConstraint("endpoint_id", "alert_id", "event", name="uq_outbox_endpoint_alert_event"),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(300), nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    id: str
    tenant: str
    url: str
    description: str
    active: bool
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Claimed:
    """An outbox row claimed for delivery, with what is needed to send it."""
    id: int
    tenant: str
    alert_id: str
    event: str
    payload: str
    attempt: int
    url: str
    secret: str


@dataclasses.dataclass(frozen=True)
class Delivery:
    outbox_id: int
    alert_id: str
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: float
    at: dt.datetime


def _endpoint(r) -> Endpoint:
    return Endpoint(r.id, r.tenant, r.url, r.description, bool(r.active), as_utc(r.created_at), r.created_by,
                    as_utc(r.updated_at))


_EP_COLS = [c for c in webhook_endpoints.c if c.name != "secret"]


# ------------------------------------------------------------------ endpoints (admin)
def create_endpoint(conn: Connection, *, tenant: str, url: str, description: str, created_by: str,
                    now: dt.datetime) -> tuple[Endpoint, str]:
    """Register an endpoint; returns it and its new signing secret (shown to the admin once)."""
    eid = "wh_" + uuid.uuid4().hex[:20]
    secret = "whsec_" + secrets.token_urlsafe(32)
    conn.execute(webhook_endpoints.insert().values(
        id=eid, tenant=tenant, url=url, secret=secret, description=description, active=True, created_at=now,
        created_by=created_by, updated_at=now))
    return get_endpoint(conn, tenant, eid), secret


def get_endpoint(conn: Connection, tenant: str, eid: str) -> Endpoint | None:
    r = conn.execute(sa.select(*_EP_COLS).where(webhook_endpoints.c.id == eid,
                                                webhook_endpoints.c.tenant == tenant)).first()
    return _endpoint(r) if r is not None else None


def list_endpoints(conn: Connection, tenant: str) -> list[Endpoint]:
    rows = conn.execute(sa.select(*_EP_COLS).where(webhook_endpoints.c.tenant == tenant)
                        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)).all()
    return [_endpoint(r) for r in rows]


def update_endpoint(conn: Connection, tenant: str, eid: str, *, now: dt.datetime, url: str | None = None,
                    description: str | None = None, active: bool | None = None) -> Endpoint | None:
    values = {k: v for k, v in (("url", url), ("description", description), ("active", active)) if v is not None}
    res = conn.execute(webhook_endpoints.update().where(webhook_endpoints.c.id == eid,
                                                        webhook_endpoints.c.tenant == tenant)
                       .values(updated_at=now, **values))
    return get_endpoint(conn, tenant, eid) if res.rowcount else None


def endpoint_deliveries(conn: Connection, tenant: str, eid: str, limit: int) -> list[Delivery]:
    """The newest delivery attempts to one endpoint."""
    q = (sa.select(deliveries.c.outbox_id, outbox.c.alert_id, outbox.c.event, deliveries.c.attempt,
                   deliveries.c.status_code, deliveries.c.error, deliveries.c.duration_ms, deliveries.c.at)
         .join(outbox, outbox.c.id == deliveries.c.outbox_id)
         .where(outbox.c.endpoint_id == eid, outbox.c.tenant == tenant)
         .order_by(deliveries.c.id.desc()).limit(limit))
    return [Delivery(r.outbox_id, r.alert_id, r.event, r.attempt, r.status_code, r.error, r.duration_ms,
                     as_utc(r.at)) for r in conn.execute(q).all()]


# ------------------------------------------------------------ the finishing transaction
_ACTIVE_ENDPOINTS = sa.select(webhook_endpoints.c.id).where(webhook_endpoints.c.tenant == sa.bindparam("tenant"),
                                                            webhook_endpoints.c.active.is_(True))


def enqueue(conn: Connection, *, tenant: str, alert_id: str, event: str, payload: str, now: dt.datetime) -> int:
    """One outbox row per active endpoint of ``tenant``; call inside the transaction that stores the
    alert. Returns the number of rows written."""
    eps = conn.execute(_ACTIVE_ENDPOINTS, {"tenant": tenant}).scalars().all()
    if eps:
        conn.execute(outbox.insert(), [
            {"tenant": tenant, "endpoint_id": e, "alert_id": alert_id, "event": event, "payload": payload,
             "status": PENDING, "attempts": 0, "created_at": now, "next_attempt_at": now} for e in eps])
    return len(eps)


# ------------------------------------------------------------------------ the worker
def claim(conn: Connection, *, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int,
          skip_locked: bool) -> list[Claimed]:
    """Claim up to ``limit`` due rows for ``worker`` until ``now + lease``. Call in a write transaction
    and commit at once. ``skip_locked`` (PostgreSQL): rows another worker is claiming right now are
    skipped rather than waited for."""
    due = sa.select(outbox.c.id).where(
        outbox.c.status == PENDING, outbox.c.next_attempt_at <= now,
        sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
    ).order_by(outbox.c.id).limit(limit)
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    ids = conn.execute(due).scalars().all()
    if not ids:
        return []
    conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(
        claimed_by=worker, claimed_until=now + lease, attempts=outbox.c.attempts + 1))
    rows = conn.execute(
        sa.select(outbox.c.id, outbox.c.tenant, outbox.c.alert_id, outbox.c.event, outbox.c.payload,
                  outbox.c.attempts, webhook_endpoints.c.url, webhook_endpoints.c.secret, webhook_endpoints.c.active)
        .join(webhook_endpoints, webhook_endpoints.c.id == outbox.c.endpoint_id)
        .where(outbox.c.id.in_(ids)).order_by(outbox.c.id)).all()
    out = []
    for r in rows:
        if not r.active:  # endpoint switched off since the event was queued: nothing to send
            conn.execute(outbox.update().where(outbox.c.id == r.id).values(
                status=FAILED, claimed_by=None, claimed_until=None, last_error="endpoint deactivated"))
            continue
        out.append(Claimed(r.id, r.tenant, r.alert_id, r.event, r.payload, r.attempts, r.url, r.secret))
    return out


def record_attempt(conn: Connection, item: Claimed, *, worker: str, now: dt.datetime, status_code: int | None,
                   error: str | None, duration_ms: float, delivered: bool, retry_at: dt.datetime | None) -> None:
    """Log one attempt and settle the row: delivered, due again at ``retry_at``, or failed for good
    (``retry_at`` None). Only the worker holding the claim settles it (a worker whose lease ran out
    and whose row was re-claimed only logs its attempt)."""
    conn.execute(deliveries.insert().values(outbox_id=item.id, attempt=item.attempt, worker=worker,
                                            status_code=status_code, error=error and error[:300],
                                            duration_ms=duration_ms, at=now))
    if delivered:
        values = {"status": DELIVERED, "delivered_at": now, "last_error": None}
    elif retry_at is not None:
        values = {"next_attempt_at": retry_at, "last_error": (error or f"HTTP {status_code}")[:300]}
    else:
        values = {"status": FAILED, "last_error": (error or f"HTTP {status_code}")[:300]}
    conn.execute(outbox.update().where(outbox.c.id == item.id, outbox.c.claimed_by == worker,
                                       outbox.c.status == PENDING)
                 .values(claimed_by=None, claimed_until=None, **values))


def pending_count(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == PENDING)).scalar_one()

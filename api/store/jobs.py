"""Simulation jobs (``POST /v1/simulations``): queued by a request, run by ``cat-prom worker``.

A job is claimed like an outbox row: in a short write transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two workers never take the same job; one writer at a time on SQLite) the worker
sets ``running``, ``claimed_by`` and a lease (``claimed_until``). A worker killed mid-job leaves
it running until the lease ends; another worker then runs it again (a simulation is a pure
function of its request and seed), up to :data:`MAX_ATTEMPTS` times, after which it fails.
"""
from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass

import sqlalchemy as sa

from .engine import as_utc
from .tables import metadata

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_ATTEMPTS = 3
_TS = sa.DateTime(timezone=True)

simulation_jobs = sa.Table(
    "simulation_jobs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request", sa.Text, nullable=False),              # JSON: bank, design, n, seed
    sa.Column("result", sa.Text, nullable=True),                # JSON: the simulation summary
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("started_at", _TS, nullable=True),
    sa.Column("finished_at", _TS, nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", _TS, nullable=True),
    sa.Index("ix_simulation_jobs_tenant_status", "tenant", "status"),
    sa.Index("ix_simulation_jobs_due", "status", "created_at"),
)


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    key_id: str
    status: str
    request: dict
    result: dict | None
    error: str | None
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


def _job(r) -> Job:
    return Job(r.id, r.tenant, r.key_id, r.status, json.loads(r.request), json.loads(r.result) if r.result else None,
               r.error, r.attempts, as_utc(r.created_at), as_utc(r.started_at), as_utc(r.finished_at))


class JobQueries:
    """Simulation jobs. Mixed into :class:`api.store.SessionStore`."""

    def enqueue_job(self, *, id: str, tenant: str, key_id: str, request: dict, now: dt.datetime,
                    max_active: int) -> Job | None:
        """Queue a job unless the tenant already has ``max_active`` queued or running (then None).
        The count and the insert are one serialised step (SQLite: one writer; PostgreSQL: a
        transaction-scoped advisory lock on the tenant)."""
        c = simulation_jobs.c
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                             {"a": 0x73696D, "b": zlib.crc32(tenant.encode()) - 2**31})
            active = conn.execute(sa.select(sa.func.count()).select_from(simulation_jobs).where(
                c.tenant == tenant, c.status.in_((QUEUED, RUNNING)))).scalar_one()
            if active >= max_active:
                return None
            conn.execute(simulation_jobs.insert().values(
                id=id, tenant=tenant, key_id=key_id, status=QUEUED, request=json.dumps(request), attempts=0,
                created_at=now))
            return _job(conn.execute(sa.select(simulation_jobs).where(c.id == id)).one())

    def get_job(self, tenant: str, job_id: str) -> Job | None:
        c = simulation_jobs.c
        with self.read(snapshot=False) as conn:
            r = conn.execute(sa.select(simulation_jobs).where(c.id == job_id, c.tenant == tenant)).first()
        return None if r is None else _job(r)

    def claim_job(self, *, worker: str, now: dt.datetime, lease: dt.timedelta) -> Job | None:
        """The oldest queued job, or a running one whose lease ended, now running under ``worker``;
        a job whose lease ended after :data:`MAX_ATTEMPTS` runs is failed instead."""
        c = simulation_jobs.c
        due = sa.or_(c.status == QUEUED, sa.and_(c.status == RUNNING, c.claimed_until < now))
        with self.write() as conn:
            q = sa.select(simulation_jobs).where(due).order_by(c.created_at, c.id).limit(1)
            if self.is_postgres:
                q = q.with_for_update(skip_locked=True)
            r = conn.execute(q).first()
            if r is None:
                return None
            if r.attempts >= MAX_ATTEMPTS:
                conn.execute(simulation_jobs.update().where(c.id == r.id).values(
                    status=FAILED, finished_at=now, claimed_by=None, claimed_until=None,
                    error=f"the job was interrupted {r.attempts} times (worker stopped or killed); not retried"))
                return None
            conn.execute(simulation_jobs.update().where(c.id == r.id).values(
                status=RUNNING, attempts=r.attempts + 1, started_at=now, claimed_by=worker,
                claimed_until=now + lease))
            return _job(conn.execute(sa.select(simulation_jobs).where(c.id == r.id)).one())

    def finish_job(self, job_id: str, *, worker: str, now: dt.datetime, result: dict | None = None,
                   error: str | None = None) -> bool:
        """Settle a job this worker still holds: done with ``result`` or failed with ``error``."""
        c = simulation_jobs.c
        with self.write() as conn:
            n = conn.execute(simulation_jobs.update().where(
                c.id == job_id, c.status == RUNNING, c.claimed_by == worker).values(
                status=DONE if error is None else FAILED, finished_at=now, claimed_until=None,
                result=None if result is None else json.dumps(result), error=error)).rowcount
        return n == 1

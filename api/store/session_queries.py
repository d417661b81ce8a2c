"""Session queries: the only SQL about sittings and their response logs."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cat_prom.jsonable import dumps

from .audit import audit_params, insert_audit, insert_audit_from
from .engine import as_utc
from .records import Advance, ResponseRecord, SessionRecord
from .tables import responses, sessions

IN_PROGRESS, FINISHED, ABANDONED, EXPIRED = "in_progress", "finished", "abandoned", "expired"

# Statements built once, so SQLAlchemy's compiled cache serves every request.
_bp = sa.bindparam
_SUMMARY = [c for c in sessions.columns if c.name != "config"]
_SEL_SESSION = sa.select(*_SUMMARY).where(sessions.c.id == _bp("p_sid"), sessions.c.tenant == _bp("p_tenant"))
_SEL_CONFIG = sa.select(sessions.c.config).where(sessions.c.id == _bp("p_sid"))
_SEL_LOG = (sa.select(responses).where(responses.c.session_id == _bp("p_sid"), responses.c.seq <= _bp("p_upto"))
            .order_by(responses.c.seq))
_SEL_RESPONSE = sa.select(responses).where(responses.c.session_id == _bp("p_sid"), responses.c.seq == _bp("p_seq"))
_INS_SESSION = sessions.insert()
_INS_RESPONSE = responses.insert().values(
    session_id=_bp("p_sid"), seq=_bp("p_seq"), item_id=_bp("p_item"), value=_bp("p_value"),
    declined=_bp("p_declined"), created_at=_bp("p_at"))
_ADVANCE_VALUES = dict(
    version=_bp("p_version"), n_responses=_bp("p_n"), status=_bp("p_status"), updated_at=_bp("p_updated"),
    expires_at=_bp("p_expires"), finished_at=_bp("p_finished"), result=_bp("p_result"))
_UPD_SESSION = (sessions.update().where(sessions.c.id == _bp("p_sid"), sessions.c.version == _bp("p_old"))
                .values(**_ADVANCE_VALUES))


def _advance_pg(audited: bool = False) -> sa.Insert:
    # PostgreSQL: update and append as ONE statement; the INSERT appends only if the UPDATE matched,
    # and so does the audit row's INSERT when there is one (a data-modifying CTE always runs).
    advanced = (sessions.update().where(sessions.c.id == _bp("p_sid"), sessions.c.version == _bp("p_old"))
                .values(**_ADVANCE_VALUES).returning(sessions.c.id).cte("advanced"))
    cols = responses.c
    stmt = responses.insert().from_select(
        ["session_id", "seq", "item_id", "value", "declined", "created_at"],
        sa.select(advanced.c.id, _bp("p_seq", type_=cols.seq.type), _bp("p_item", type_=cols.item_id.type),
                  _bp("p_value", type_=cols.value.type), _bp("p_declined", type_=cols.declined.type),
                  _bp("p_at", type_=cols.created_at.type))).returning(cols.seq)
    if audited:
        stmt = stmt.add_cte(insert_audit_from(advanced).cte("audited"))
    return stmt


_ADVANCE_PG = _advance_pg()
_ADVANCE_PG_AUDITED = _advance_pg(audited=True)


def _insert_session_pg_audited() -> sa.Insert:
    # PostgreSQL: the new sitting and its audit row as ONE statement (the audit INSERT selects from the
    # sitting's RETURNING), atomic on its own in autocommit: one round trip instead of three.
    created = (sessions.insert().values({c.name: _bp(c.name, type_=c.type) for c in sessions.columns})
               .returning(sessions.c.id).cte("created"))
    return insert_audit_from(created)


_INS_SESSION_PG_AUDITED = _insert_session_pg_audited()


def _session_record(r) -> SessionRecord:
    return SessionRecord(
        id=r.id, tenant=r.tenant, patient_ref=r.patient_ref, status=r.status, battery_id=r.battery_id,
        bank_ids=json.loads(r.bank_ids), version=r.version, n_responses=r.n_responses,
        created_at=as_utc(r.created_at), updated_at=as_utc(r.updated_at), expires_at=as_utc(r.expires_at),
        finished_at=as_utc(r.finished_at), result=json.loads(r.result) if r.result else None)


def _response_record(r) -> ResponseRecord:
    return ResponseRecord(seq=r.seq, item_id=r.item_id, value=None if r.value is None else json.loads(r.value),
                          declined=bool(r.declined), created_at=as_utc(r.created_at))


def _response_params(resp: ResponseRecord) -> dict[str, Any]:
    return {"p_seq": resp.seq, "p_item": resp.item_id, "p_value": None if resp.declined else dumps(resp.value),
            "p_declined": resp.declined, "p_at": resp.created_at}


def _session_params(rec: SessionRecord, config: dict) -> dict[str, Any]:
    return {"id": rec.id, "tenant": rec.tenant, "patient_ref": rec.patient_ref, "status": rec.status,
            "battery_id": rec.battery_id, "bank_ids": dumps(rec.bank_ids), "config": dumps(config),
            "version": rec.version, "n_responses": rec.n_responses, "created_at": rec.created_at,
            "updated_at": rec.updated_at, "expires_at": rec.expires_at, "finished_at": rec.finished_at,
            "result": None if rec.result is None else dumps(rec.result)}


class SessionQueries:
    """Sittings and their response logs. Mixed into :class:`api.store.SessionStore`."""

    def insert_session(self, rec: SessionRecord, config: dict,
                       then: Callable[[Connection], None] | None = None, audit: list[dict] | None = None) -> None:
        """Create a sitting: its summary and its immutable ``config`` (the engine's state without log);
        ``then(conn)`` runs in the same transaction (a sitting finished at creation: its domain results),
        and so are the request's ``audit`` rows written (:mod:`api.audit`). PostgreSQL, with one audit row
        and no ``then``: one statement in autocommit."""
        if self.is_postgres and then is None and audit is not None and len(audit) == 1:
            self.first_autocommit(_INS_SESSION_PG_AUDITED, {**_session_params(rec, config), **audit_params(audit[0])})
            return
        with self.write() as conn:
            conn.execute(_INS_SESSION, _session_params(rec, config))
            if audit:
                insert_audit(conn, audit)
            if then is not None:
                then(conn)

    def insert_finished_session(self, rec: SessionRecord, config: dict, log: list[ResponseRecord],
                                then: Callable[[Connection], None] | None = None) -> bool:
        """Store a sitting that was run elsewhere (FHIR ``$next-question``) and has finished: its
        summary, config and whole response log in ONE transaction. False (nothing written) when a
        sitting with this id exists already. ``then(conn)`` runs in the same transaction (its domain
        results, alerts and outbox rows)."""
        with self.write() as conn:
            if conn.execute(sa.select(sessions.c.id).where(sessions.c.id == rec.id)).first() is not None:
                return False
            conn.execute(_INS_SESSION, _session_params(rec, config))
            if log:
                conn.execute(_INS_RESPONSE, [{"p_sid": rec.id, **_response_params(r)} for r in log])
            if then is not None:
                then(conn)
        return True

    def get_session(self, sid: str, tenant: str) -> SessionRecord | None:
        """The sitting ``sid`` of ``tenant`` without its config, or None (one autocommit statement)."""
        with self.read(snapshot=False) as conn:
            r = conn.execute(_SEL_SESSION, {"p_sid": sid, "p_tenant": tenant}).first()
        return None if r is None else _session_record(r)

    def get_replay(self, sid: str, upto: int) -> tuple[dict, list[ResponseRecord]]:
        """What a replay needs: the sitting's config and its log up to ``seq == upto``. Two autocommit
        statements need no common snapshot: the config never changes, and the log rows up to a
        ``seq`` the caller has seen committed are all there and never change either."""
        with self.read(snapshot=False) as conn:
            config = conn.execute(_SEL_CONFIG, {"p_sid": sid}).scalar_one()
            log = [_response_record(r) for r in conn.execute(_SEL_LOG, {"p_sid": sid, "p_upto": upto})]
        return json.loads(config), log

    def recent_statuses(self, conn: Connection, tenant: str, patient_ref: str, n: int,
                        now: dt.datetime) -> list[str]:
        """The statuses of the patient's ``n`` newest sittings as of ``now`` (an in-progress sitting
        past its expiry is ``expired``), newest first, in the caller's transaction."""
        q = (sa.select(sessions.c.status, sessions.c.expires_at)
             .where(sessions.c.tenant == tenant, sessions.c.patient_ref == patient_ref)
             .order_by(sessions.c.created_at.desc(), sessions.c.id.desc()).limit(n))
        return [EXPIRED if st == IN_PROGRESS and now > as_utc(exp) else st for st, exp in conn.execute(q)]

    def get_response(self, sid: str, seq: int) -> ResponseRecord | None:
        with self.read(snapshot=False) as conn:
            r = conn.execute(_SEL_RESPONSE, {"p_sid": sid, "p_seq": seq}).first()
        return None if r is None else _response_record(r)

    def advance(self, sid: str, old_version: int, adv: Advance,
                then: Callable[[Connection], None] | None = None, audit: list[dict] | None = None) -> bool:
        """In ONE transaction: move the sitting to ``adv`` only if its version is still
        ``old_version``, append ``adv.response`` to the log, and run ``then(conn)`` (the finishing
        answer's domain results, alerts and outbox rows) in the same transaction. False (nothing
        written) when the version moved (another request answered first; a cached engine object is
        then stale).

        PostgreSQL: one statement (the INSERT selects from the UPDATE's RETURNING), atomic on its
        own, in autocommit: one round trip; with ``then``, that statement and ``then``'s in one
        transaction. SQLite: ``BEGIN IMMEDIATE`` under the writer lock, UPDATE, INSERT, ``then``,
        COMMIT.

        ``audit``: the audit rows of the request (:mod:`api.audit`), written in the same
        transaction, so the log holds a row exactly for each answer stored (on PostgreSQL, one row
        goes inside the answer's statement)."""
        params = {"p_sid": sid, "p_old": old_version, "p_version": adv.version, "p_n": adv.n_responses,
                  "p_status": adv.status, "p_updated": adv.updated_at, "p_expires": adv.expires_at,
                  "p_finished": adv.finished_at, "p_result": None if adv.result is None else dumps(adv.result),
                  **_response_params(adv.response)}
        if self.is_postgres:
            stmt = _ADVANCE_PG
            if audit is not None and len(audit) == 1:  # the audit row inside the answer's statement
                stmt, params, audit = _ADVANCE_PG_AUDITED, {**params, **audit_params(audit[0])}, None
            if then is None and not audit:
                return self.first_autocommit(stmt, params) is not None
        with self.write() as conn:
            if self.is_postgres:
                if conn.execute(stmt, params).first() is None:
                    return False
            else:
                if conn.execute(_UPD_SESSION, params).rowcount != 1:
                    return False
                conn.execute(_INS_RESPONSE, params)
            if audit:
                insert_audit(conn, audit)
            if then is not None:
                then(conn)
        return True

    def abandon(self, sid: str, tenant: str, now: dt.datetime,
                then: Callable[[Connection, SessionRecord], None] | None = None) -> SessionRecord | None:
        """Mark an in-progress sitting abandoned; returns the sitting as it was (None: no such
        sitting). A finished or already abandoned sitting is left as it is. ``then(conn, before)``
        runs in the same transaction after an in-progress sitting was marked (the abandoned-sittings
        alert rule)."""
        with self.write() as conn:
            sel = _SEL_SESSION.with_for_update() if self.is_postgres else _SEL_SESSION
            r = conn.execute(sel, {"p_sid": sid, "p_tenant": tenant}).first()
            if r is None:
                return None
            if r.status == IN_PROGRESS:
                conn.execute(sessions.update().where(sessions.c.id == sid).values(
                    status=ABANDONED, updated_at=now, version=r.version + 1))
                if then is not None:
                    then(conn, _session_record(r))
        return _session_record(r)

    def list_finished(self, tenant: str, patient_ref: str, limit: int, offset: int, *,
                      since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[SessionRecord]:
        """The patient's finished sittings, oldest first, finished within [since, until] if given."""
        q = (sa.select(*_SUMMARY)
             .where(sessions.c.tenant == tenant, sessions.c.patient_ref == patient_ref,
                    sessions.c.status == FINISHED))
        if since is not None:
            q = q.where(sessions.c.finished_at >= since)
        if until is not None:
            q = q.where(sessions.c.finished_at <= until)
        q = q.order_by(sessions.c.finished_at, sessions.c.id).limit(limit).offset(offset)
        with self.read() as conn:
            return [_session_record(r) for r in conn.execute(q)]

"""CAT sessions over the database: create, answer, read, abandon.

The engine's :class:`~cat_prom.session.Battery` is the only mutable state and
it is fully determined by its ``to_dict()`` document (bank ids, designs, seed
and the append-only log). An answer is applied to the engine outside any lock,
on the session version just read; one short write transaction then stores the
new state with ``version + 1`` *only if the version is unchanged*
(``UPDATE ... WHERE version = :v``, which takes the row lock on PostgreSQL and
runs under ``BEGIN IMMEDIATE`` on SQLite) and appends the ``responses`` row in
the same transaction. Concurrent answers are therefore serialised and exactly
one wins; the loser starts again and sees the winner's answer (same answer:
the same reply; different answer: 409).

A worker keeps recently used sessions in memory keyed by ``(id, version)``; an
entry whose version differs from the database row's (another worker moved the
session on) is ignored and the session is rebuilt by replaying its log.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import threading
import uuid
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa

from cat_prom.errors import CatPromError

from .db import Database, as_utc, dumps, responses, sessions, utcnow
from .problems import Problem
from .registry import Registry

IN_PROGRESS, FINISHED, ABANDONED, EXPIRED = "in_progress", "finished", "abandoned", "expired"

# Statements built once, so SQLAlchemy's compiled cache serves every request.
_bp = sa.bindparam
_SEL_SESSION = sa.select(sessions).where(sessions.c.id == _bp("p_sid"), sessions.c.tenant == _bp("p_tenant"))
_SEL_SESSION_FOR_UPDATE = _SEL_SESSION.with_for_update()
_SEL_RESPONSE = sa.select(responses).where(responses.c.session_id == _bp("p_sid"), responses.c.seq == _bp("p_seq"))
_INS_SESSION = sessions.insert()
# The answer route's read and conditional advance are Database.fetch_session / advance_session.


class SessionCache:
    """LRU of live engine objects: ``id -> (version, battery)``.

    ``take`` removes the entry, so an object is only ever mutated by the request
    that holds it; ``put`` returns it after the transaction committed.
    """

    def __init__(self, max_size: int = 5000):
        self.max_size = max_size
        self._d: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def take(self, sid: str, version: int):
        with self._lock:
            hit = self._d.pop(sid, None)
        if hit is not None and hit[0] == version:
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, sid: str, version: int, battery) -> None:
        with self._lock:
            self._d[sid] = (version, battery)
            self._d.move_to_end(sid)
            while len(self._d) > self.max_size:
                self._d.popitem(last=False)

    def discard(self, sid: str) -> None:
        with self._lock:
            self._d.pop(sid, None)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


def _engine():
    # Imported lazily so that the service starts (health, keys, banks) even while the
    # engine's session module is missing or broken; readyz reports it.
    from cat_prom.design import Design
    from cat_prom.session import Battery
    return Battery, Design


def engine_available() -> str | None:
    try:
        _engine()
    except Exception as e:  # pragma: no cover - depends on the engine checkout
        return f"{type(e).__name__}: {e}"
    return None


def clean(obj):
    """Plain JSON types (numpy scalars -> Python, non-finite floats -> None)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item"):  # numpy scalar
        return clean(obj.item())
    if hasattr(obj, "tolist"):
        return clean(obj.tolist())
    if hasattr(obj, "to_dict"):
        return clean(obj.to_dict())
    return str(obj)


def iso(t: dt.datetime | None) -> str | None:
    return as_utc(t).isoformat().replace("+00:00", "Z") if t is not None else None


class SessionService:
    def __init__(self, db: Database, registry: Registry, ttl_seconds: int, cache_size: int = 5000):
        self.db = db
        self.registry = registry
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.cache = SessionCache(cache_size)
        self._options: dict[tuple[str, str], list] = {}  # (bank id, item id) -> plain options (banks are frozen)

    # ------------------------------------------------------------------ create
    def create(self, tenant: str, args: dict) -> tuple[str, str]:
        """Start a sitting; returns (session id, JSON body)."""
        Battery, Design = _engine()
        reg = self.registry
        battery_id = args.get("battery")
        if battery_id is not None:
            bat = reg.batteries.get(battery_id)
            if bat is None:
                raise Problem("battery-not-found", f"No battery {battery_id!r}; GET /v1/banks lists the batteries.",
                              errors={"battery": [f"unknown battery {battery_id!r}"]})
            bank_ids = list(bat.banks)
            base_designs = bat.designs
        else:
            bank_ids = list(args["banks"])
            base_designs = {}
            for i, b in enumerate(bank_ids):
                if b not in reg.banks:
                    raise Problem("bank-not-found", f"No item bank {b!r}; GET /v1/banks lists the banks.",
                                  errors={"banks": {str(i): [f"unknown bank {b!r}"]}})
        per_bank = args.get("designs") or {}
        extra = set(per_bank) - set(bank_ids)
        if extra:
            raise Problem("validation-error", f"`designs` names bank {sorted(extra)[0]!r}, which is not in this "
                                              f"session.", errors={"designs": [f"{sorted(extra)[0]!r} not in session"]})
        for src in [args.get("design") or {}] + list(per_bank.values()):
            if "grid" in src:
                raise Problem("invalid-design", "The quadrature `grid` is fixed by the service's bank and battery "
                              "configuration and cannot be overridden per session.",
                              errors={"design": ["`grid` cannot be overridden"]})
        parts = []
        for b in bank_ids:
            merged: dict = {}
            merged.update(base_designs.get(b) or {})
            merged.update(args.get("design") or {})
            merged.update(per_bank.get(b) or {})
            design = None
            if merged:
                try:
                    design = Design.from_dict(merged)
                except CatPromError as e:
                    raise Problem("invalid-design", f"design for bank {b!r}: {e.message}",
                                  errors={"design": [e.message]}, fields=clean(e.fields)) from None
                except (TypeError, ValueError, KeyError) as e:
                    raise Problem("invalid-design", f"design for bank {b!r} is not valid: {type(e).__name__}",
                                  errors={"design": ["invalid design"]}) from None
            parts.append((reg.banks[b], design))
        exclude = list(dict.fromkeys(args.get("exclude_items") or []))
        unknown = [x for x in exclude if not any(x in bank.ids for bank, _ in parts)]
        if unknown:
            raise Problem("unknown-item", f"exclude_items: item {unknown[0]!r} is in none of this session's banks.",
                          errors={"exclude_items": [f"unknown item {x!r}" for x in unknown[:10]]})
        seed = args.get("seed")
        if seed is None:
            seed = secrets.randbits(62)
        battery = Battery(parts, seed=seed, id=battery_id, exclude=exclude)
        now = utcnow()
        sid = str(uuid.uuid4())
        question = self._question(battery, 1, len(bank_ids))
        finished = bool(battery.finished)
        row = {
            "id": sid, "tenant": tenant, "patient_ref": args["patient"],
            "status": FINISHED if finished else IN_PROGRESS, "battery_id": battery_id,
            "bank_ids": dumps(bank_ids), "state": dumps(battery.to_dict()), "version": 0,
            "n_responses": 0, "created_at": now, "updated_at": now, "expires_at": now + self.ttl,
            "finished_at": now if finished else None, "question": dumps(question) if question else None,
            "result": dumps(clean(battery.results())) if finished else None,
        }
        view = self._view(row, now)
        with self.db.write() as conn:
            conn.execute(_INS_SESSION, row)
        self.cache.put(sid, 0, battery)
        return sid, dumps(view)

    # ------------------------------------------------------------------ answer
    def answer(self, tenant: str, sid: str, args: dict) -> str:
        """Apply one answer; returns the JSON body (the stored reply on an idempotent retry).

        Optimistic concurrency: the engine work runs outside any lock on the version read;
        the write transaction then updates the row only if its version is unchanged (the
        UPDATE takes the row lock on PostgreSQL; SQLite runs it under BEGIN IMMEDIATE) and
        appends the response row keyed by (session, seq). A writer that loses the race
        starts again and then sees the winner's answer: an identical answer gets the same
        reply, a different one 409.
        """
        for _ in range(20):
            out = self._answer_once(tenant, sid, args)
            if out is not None:
                return out
        raise Problem("conflict", "The session is changing too fast to take this answer; retry.",  # pragma: no cover
                      headers={"Retry-After": "1"})

    def _answer_once(self, tenant: str, sid: str, args: dict) -> str | None:
        Battery, _ = _engine()
        seq = args["seq"]
        item_id = args["item_id"]
        declined = bool(args.get("declined", False))
        value = None if declined else args["value"]
        value_json = None if declined else dumps(value)
        # Autocommit reads: the responses row and the session update commit together, so a
        # response with seq <= n_responses is always visible once the session row says so.
        row = self.db.fetch_session(sid, tenant)
        if row is None:
            raise _not_found(sid)
        if seq <= row.n_responses:
            with self.db.read(snapshot=False) as conn:
                prev = conn.execute(_SEL_RESPONSE, {"p_sid": sid, "p_seq": seq}).first()
                if (prev is not None and prev.item_id == item_id and bool(prev.declined) == declined
                        and (declined or prev.value == value_json)):
                    return prev.reply  # idempotent retry: the same result as the first time
                raise Problem("seq-conflict",
                              f"Question {seq} was already answered differently; the session is at question "
                              f"{row.n_responses + 1}. GET the session to see where it is.",
                              seq=seq, next_seq=row.n_responses + 1 if row.status == IN_PROGRESS else None)
        now = utcnow()
        status = self._status(row, now)
        if status == ABANDONED:
            raise Problem("session-abandoned", "This session was abandoned (DELETE); start a new one.")
        if status == EXPIRED:
            raise Problem("session-expired", "This session expired after a long pause; start a new one.")
        if status == FINISHED:
            raise Problem("session-finished", "This session is finished and takes no more answers; "
                                              "its scores are in `results`.")
        if seq != row.n_responses + 1:
            raise Problem("seq-out-of-order", f"The session is at question {row.n_responses + 1}, but "
                                              f"this answer is for question {seq}.",
                          seq=seq, next_seq=row.n_responses + 1)
        battery = self.cache.take(sid, row.version)
        if battery is None:
            try:
                battery = Battery.from_dict(self.registry.banks, json.loads(row.state))
            except CatPromError:
                raise Problem("bank-changed", "This session cannot continue: one of its item banks was "
                              "changed or removed since it started. Start a new session.") from None
        # From here the battery object is ours alone (taken out of the cache); it goes back
        # only once the database holds the state it represents.
        if declined:
            battery.decline(item_id)  # engine errors propagate; the object is simply dropped
        else:
            battery.answer(item_id, value)
        finished = bool(battery.finished)
        n = row.n_responses + 1
        new_version = row.version + 1
        bank_ids = json.loads(row.bank_ids)
        question = None if finished else self._question(battery, n + 1, len(bank_ids))
        result = clean(battery.results()) if finished else None
        upd = {
            "state": dumps(battery.to_dict()), "version": new_version, "n_responses": n,
            "status": FINISHED if finished else IN_PROGRESS, "updated_at": now,
            "expires_at": now + self.ttl, "finished_at": now if finished else None,
            "question": dumps(question) if question else None,
            "result": dumps(result) if finished else None,
        }
        # The reply is what _view() would render from the updated row, built from the objects
        # in hand rather than by decoding the JSON columns just encoded.
        reply = dumps({
            "id": row.id, "status": upd["status"], "patient": row.patient_ref, "battery": row.battery_id,
            "banks": bank_ids, "created_at": iso(row.created_at), "updated_at": iso(now),
            "expires_at": iso(upd["expires_at"]), "finished_at": iso(upd["finished_at"]), "n_responses": n,
            "next_seq": None if finished else n + 1, "question": question, "results": result,
        })
        # One transaction: the session row moves to new_version only if it is still at row.version,
        # and the response row is appended with it (see Database.advance_session).
        if not self.db.advance_session(sid, row.version, upd, {
                "seq": seq, "item_id": item_id, "value": value_json, "declined": declined, "created_at": now,
                "reply": reply}):
            return None  # another request moved the session on first (nothing written): start again
        self._keep(sid, new_version, battery, finished)
        return reply

    def _keep(self, sid: str, version: int, battery, finished: bool) -> None:
        # A finished sitting takes no more answers (a retry of its last one is served from the
        # stored reply), so it is not kept: the cache then holds only live sittings, which also
        # keeps the garbage collector's full passes short.
        if finished:
            self.cache.discard(sid)
        else:
            self.cache.put(sid, version, battery)

    # -------------------------------------------------------------------- read
    def get(self, tenant: str, sid: str, *, with_answers: bool = True) -> dict:
        with self.db.read() as conn:
            row = conn.execute(_SEL_SESSION, {"p_sid": sid, "p_tenant": tenant}).first()
            if row is None:
                raise _not_found(sid)
            view = self._view(row._mapping, utcnow())
            if with_answers:
                rows = conn.execute(sa.select(responses.c.seq, responses.c.item_id, responses.c.value,
                                              responses.c.declined, responses.c.created_at)
                                    .where(responses.c.session_id == sid).order_by(responses.c.seq)).all()
                view["answers"] = [
                    {"seq": r.seq, "item_id": r.item_id, "answered_at": iso(r.created_at),
                     **({"declined": True} if r.declined else {"value": json.loads(r.value)})}
                    for r in rows
                ]
        return view

    def abandon(self, tenant: str, sid: str) -> None:
        with self.db.write() as conn:
            stmt = _SEL_SESSION_FOR_UPDATE if self.db.is_postgres else _SEL_SESSION
            row = conn.execute(stmt, {"p_sid": sid, "p_tenant": tenant}).first()
            if row is None:
                raise _not_found(sid)
            if row.status == FINISHED:
                raise Problem("session-finished", "A finished session cannot be abandoned; its results are kept.")
            if row.status == ABANDONED:
                return
            now = utcnow()
            conn.execute(sessions.update().where(sessions.c.id == sid).values(
                status=ABANDONED, updated_at=now, question=None, version=row.version + 1))
        self.cache.discard(sid)

    def patient_results(self, tenant: str, patient: str, limit: int, offset: int) -> dict:
        q = (sa.select(sessions.c.id, sessions.c.battery_id, sessions.c.bank_ids, sessions.c.created_at,
                       sessions.c.finished_at, sessions.c.result)
             .where(sessions.c.tenant == tenant, sessions.c.patient_ref == patient, sessions.c.status == FINISHED)
             .order_by(sessions.c.finished_at, sessions.c.id).limit(limit).offset(offset))
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        return {"patient": patient, "sessions": [
            {"session_id": r.id, "battery": r.battery_id, "banks": json.loads(r.bank_ids),
             "created_at": iso(r.created_at), "finished_at": iso(r.finished_at),
             "results": json.loads(r.result) if r.result else []}
            for r in rows]}

    # ----------------------------------------------------------------- helpers
    def _status(self, row, now: dt.datetime) -> str:
        status = row["status"] if isinstance(row, dict) else row.status
        expires = as_utc(row["expires_at"] if isinstance(row, dict) else row.expires_at)
        if status == IN_PROGRESS and now > expires:
            return EXPIRED
        return status

    def _question(self, battery, seq: int, n_domains: int) -> dict | None:
        item = battery.current_item
        if item is None:
            return None
        bank = battery.current_bank
        q = {
            "seq": seq, "position": seq, "item_id": item.id, "stem": item.stem,
            "options": self._item_options(bank, item), "bank_id": bank.id, "domain": bank.domain,
            "domain_index": int(battery.domain_index), "n_domains": n_domains,
            "recall_period": bank.recall_period,
        }
        if getattr(bank, "instructions", ""):
            q["instructions"] = bank.instructions
        return q

    def _item_options(self, bank, item) -> list:
        key = (bank.id, item.id)
        opts = self._options.get(key)
        if opts is None:
            opts = self._options[key] = clean(item.options())
        return opts  # only ever serialised, never mutated

    def _view(self, row, now: dt.datetime) -> dict:
        r = row if isinstance(row, dict) else dict(row)
        status = self._status(r, now)
        in_progress = status == IN_PROGRESS
        return {
            "id": r["id"], "status": status, "patient": r["patient_ref"], "battery": r["battery_id"],
            "banks": json.loads(r["bank_ids"]), "created_at": iso(r["created_at"]),
            "updated_at": iso(r["updated_at"]), "expires_at": iso(r["expires_at"]),
            "finished_at": iso(r["finished_at"]), "n_responses": r["n_responses"],
            "next_seq": r["n_responses"] + 1 if in_progress else None,
            "question": json.loads(r["question"]) if in_progress and r["question"] else None,
            "results": json.loads(r["result"]) if r["result"] else None,
        }


def _not_found(sid: str) -> Problem:
    return Problem("session-not-found", "No session with this id for your API key's tenant.")

"""CAT sessions: create, answer, read, abandon — use cases over the store and the engine.

No SQL and no HTTP here: the store (:mod:`api.store`) owns every statement, the routes own the
request and the reply's serialisation.

A sitting is its immutable config (the engine's :meth:`Battery.to_dict` without its log: bank
ids, designs, seed, exclusions) plus its append-only response log; the engine object is a cache
that any process rebuilds by replaying the log. An answer is applied to the engine outside any
lock, on the version just read; the store then advances the sitting to ``version + 1`` *only if
the version is unchanged* and appends the response row in the same transaction. Concurrent
answers are therefore serialised and exactly one wins; the loser starts again and sees the
winner's answer (same answer: the same reply; different answer: 409).

A worker keeps its live sittings in memory keyed by ``(id, version)``, with the session row as
this worker last wrote it. An answer to the question the cached sitting offers is applied to it
and written with ``UPDATE ... WHERE version = <cached version>`` straight away: one statement on
PostgreSQL, no read and no log replay. If another worker or request moved the sitting on, that
write matches no row (nothing is written) and the answer takes the checked path: read the row,
rebuild the sitting by replaying its log if the cached version is not the row's, apply, and write
conditionally again. An engine error on the unchecked path is only reported after a read confirms
the cached version is still current.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import threading
import uuid
from collections import OrderedDict
from typing import Any

from cat_prom.errors import CatPromError
from cat_prom.jsonable import jsonable

from .problems import Problem, engine_problem
from .registry import Registry
from .store import (ABANDONED, EXPIRED, FINISHED, IN_PROGRESS, Advance, ResponseRecord, SessionRecord,
                    SessionStore, as_utc, utcnow)


class SessionCache:
    """LRU of live engine objects: ``id -> (version, battery, record)``.

    ``take``/``pop`` remove the entry, so an object is only ever mutated by the request that
    holds it; ``put`` returns it once the database holds the state it represents (``record`` is
    the session row as of ``version``).
    """

    def __init__(self, max_size: int = 5000):
        self.max_size = max_size
        self._d: OrderedDict[str, tuple[int, Any, SessionRecord]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def pop(self, sid: str) -> tuple[int, Any, SessionRecord] | None:
        with self._lock:
            return self._d.pop(sid, None)

    def take(self, sid: str, version: int):
        """The battery at ``version``, or None (an entry at another version is dropped)."""
        hit = self.pop(sid)
        if hit is not None and hit[0] == version:
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, sid: str, version: int, battery, record: SessionRecord) -> None:
        with self._lock:
            self._d[sid] = (version, battery, record)
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
    from cat_prom.session import sitting_from_dict
    return sitting_from_dict, Design


def start_sitting(battery_def, entries: list[tuple], *, seed: int, exclude=(), previous: dict | None = None):
    """A new sitting on ``entries`` (``(bank, design)`` pairs, designs merged and resolved): the battery
    file's own construction (:meth:`cat_prom.battery_file.BatteryDef.sitting`: separate or joint scoring)
    when ``battery_def`` is given, else a plain :class:`~cat_prom.session.Battery` of the banks. The one
    path for the JSON API and FHIR ``$next-question``."""
    if battery_def is not None:
        return battery_def.sitting(entries, seed=seed, exclude=exclude, previous=previous)
    from cat_prom.session import Battery
    return Battery(entries, seed=seed, exclude=exclude, previous=previous)


def engine_available() -> str | None:
    try:
        _engine()
    except Exception as e:  # pragma: no cover - depends on the engine checkout
        return f"{type(e).__name__}: {e}"
    return None


def iso(t: dt.datetime | None) -> str | None:
    return as_utc(t).isoformat().replace("+00:00", "Z") if t is not None else None


def effective_status(rec: SessionRecord, now: dt.datetime) -> str:
    """The stored status, or ``expired`` for an in-progress sitting past its expiry."""
    if rec.status == IN_PROGRESS and now > rec.expires_at:
        return EXPIRED
    return rec.status


class SessionService:
    def __init__(self, store: SessionStore, registry: Registry, ttl_seconds: int, cache_size: int = 5000,
                 clinical=None):
        self.store = store
        self.clinical = clinical  #: api.clinical.ClinicalService: goals for designs, evaluation on finish
        self.registry = registry
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.cache = SessionCache(cache_size)
        self._options: dict[tuple[str, str], list] = {}  # (bank id, item id) -> plain options (banks are frozen)

    # ------------------------------------------------------------------ render
    def render(self, rec: SessionRecord, battery, now: dt.datetime, answers: list[ResponseRecord] | None = None
               ) -> dict:
        """The reply for create, answer and get: the sitting ``rec`` as of ``now``, with the
        question ``battery`` offers while the sitting is in progress, and the response log when
        ``answers`` is given."""
        status = effective_status(rec, now)
        in_progress = status == IN_PROGRESS
        view = {
            "id": rec.id, "status": status, "patient": rec.patient_ref, "battery": rec.battery_id,
            "banks": rec.bank_ids, "created_at": iso(rec.created_at), "updated_at": iso(rec.updated_at),
            "expires_at": iso(rec.expires_at), "finished_at": iso(rec.finished_at),
            "n_responses": rec.n_responses, "next_seq": rec.n_responses + 1 if in_progress else None,
            "question": self._question(battery, rec.n_responses + 1, len(rec.bank_ids)) if in_progress else None,
            "results": rec.result,
        }
        if answers is not None:
            view["answers"] = [
                {"seq": a.seq, "item_id": a.item_id, "answered_at": iso(a.created_at),
                 **({"declined": True} if a.declined else {"value": a.value})}
                for a in answers]
        return view

    # ------------------------------------------------------------------ create
    def create(self, tenant: str, args: dict, audit=None) -> dict:
        """Start a sitting; returns its rendering (with the first question). ``audit``
        (:class:`api.audit.InTransaction`, optional): the request's audit row, written with the sitting."""
        battery_id = args.get("battery")
        bank_ids, parts = self._domains(args, tenant)
        seed = args.get("seed")
        if seed is None:
            seed = secrets.randbits(62)
        now = utcnow()
        battery = start_sitting(self.registry.batteries.get(battery_id) if battery_id is not None else None, parts,
                                seed=seed, exclude=self._exclusions(args, parts),
                                previous=self._previous(tenant, args["patient"], parts, now))
        finished = bool(battery.finished)
        rec = SessionRecord(
            id=str(uuid.uuid4()), tenant=tenant, patient_ref=args["patient"],
            status=FINISHED if finished else IN_PROGRESS, battery_id=battery_id, bank_ids=bank_ids, version=0,
            n_responses=0, created_at=now, updated_at=now, expires_at=now + self.ttl,
            finished_at=now if finished else None, result=jsonable(battery.results()) if finished else None)
        then = None
        if finished and self.clinical is not None:  # nothing could be asked: every domain not scored
            def then(conn):
                self.clinical.on_finished(conn, tenant=tenant, patient=rec.patient_ref, session_id=rec.id,
                                          battery=battery, now=now)
        self.store.insert_session(rec, battery.to_dict(), then=then,
                                  audit=None if audit is None else audit.rows(rec.patient_ref))
        if audit is not None:
            audit.committed(rec.patient_ref)
        if not finished:
            self.cache.put(rec.id, 0, battery, rec)
        return self.render(rec, battery, now)

    def store_finished(self, tenant: str, sid: str, patient: str, battery_id: str | None, battery) -> dict | None:
        """Store a sitting run to its end elsewhere (the FHIR interface's stateless ``$next-question``)
        as a finished sitting ``sid``: its config and response log exactly as if it had been run
        here, in one transaction. Returns its rendering, or None when ``sid`` exists already."""
        now = utcnow()
        state = battery.to_dict()
        config = {**state, "sessions": [{**s, "log": []} for s in state["sessions"]]}  # as create() stores it
        if "sequence" in state:  # a joint battery's answer order: the response log is it
            config["sequence"] = []
        entries = [e for s in battery.sessions for e in s.log]
        log = [ResponseRecord(seq=i + 1, item_id=e["item_id"], value=e.get("value"), declined=bool(e.get("declined")),
                              created_at=now) for i, e in enumerate(entries)]
        rec = SessionRecord(
            id=sid, tenant=tenant, patient_ref=patient, status=FINISHED, battery_id=battery_id,
            bank_ids=[s.bank.id for s in battery.sessions], version=len(log), n_responses=len(log), created_at=now,
            updated_at=now, expires_at=now + self.ttl, finished_at=now, result=jsonable(battery.results()))
        then = None
        if self.clinical is not None:  # domain results, alerts and outbox rows, as for a sitting finished here
            def then(conn):
                self.clinical.on_finished(conn, tenant=tenant, patient=patient, session_id=sid, battery=battery,
                                          now=now)
        if not self.store.insert_finished_session(rec, config, log, then=then):
            return None
        return self.render(rec, None, now, answers=log)

    def _domains(self, args: dict, tenant: str) -> tuple[list[str], list[tuple]]:
        """The sitting's bank ids and (bank, design) pairs, designs merged battery < all < per bank; a
        classification threshold ``"goal"`` becomes the patient's acceptable level (or the clinic's)."""
        _, Design = _engine()
        reg = self.registry
        battery_id = args.get("battery")
        if battery_id is not None:
            bat = reg.batteries.get(battery_id)
            if bat is None:
                raise Problem("battery-not-found", f"No battery {battery_id!r}; GET /v1/banks lists the batteries.",
                              errors={"battery": [f"unknown battery {battery_id!r}"]})
            bank_ids, base_designs = list(bat.banks), bat.designs
        else:
            bank_ids, base_designs = list(args["banks"]), {}
            for i, b in enumerate(bank_ids):
                if b not in reg.banks:
                    raise Problem("bank-not-found", f"No item bank {b!r}; GET /v1/banks lists the banks.",
                                  errors={"banks": {str(i): [f"unknown bank {b!r}"]}})
        per_bank = args.get("designs") or {}
        extra = sorted(set(per_bank) - set(bank_ids))
        if extra:
            raise Problem("validation-error", f"`designs` names bank {extra[0]!r}, which is not in this session.",
                          errors={"designs": [f"{extra[0]!r} not in session"]})
        for src in [args.get("design") or {}] + list(per_bank.values()):
            if "grid" in src:
                raise Problem("invalid-design", "The quadrature `grid` is fixed by the service's bank and battery "
                              "configuration and cannot be overridden per session.",
                              errors={"design": ["`grid` cannot be overridden"]})
        parts = []
        for b in bank_ids:
            merged = {**(base_designs.get(b) or {}), **(args.get("design") or {}), **(per_bank.get(b) or {})}
            design = None
            if merged:
                try:
                    design = Design.from_dict(merged)
                except CatPromError as e:
                    p = engine_problem(e)
                    raise Problem("invalid-design", f"design for bank {b!r}: {e.message}",
                                  errors={"design": [e.message]}, **p.extra) from None
                if self.clinical is not None:
                    design = self.clinical.resolve_goal_design(tenant, args["patient"], b, design)
            parts.append((reg.banks[b], design))
        return bank_ids, parts

    def _previous(self, tenant: str, patient: str, parts: list[tuple], now: dt.datetime) -> dict | None:
        """The patient's last scored sitting of each bank whose design asks for the previous-sitting prior
        (bank id -> ``{"theta", "se", "elapsed_days"}``, elapsed up to ``now``), from the clinical layer's
        domain results. It becomes part of the sitting's stored config (the engine's ``to_dict``), so a
        replay rebuilds the same prior whenever and wherever it runs."""
        wanted = [bank.id for bank, d in parts if d is not None and d.prior.get("type") == "previous"]
        if not wanted or self.clinical is None:
            return None
        return self.clinical.previous_sittings(tenant, patient, wanted, now) or None

    @staticmethod
    def _exclusions(args: dict, parts: list[tuple]) -> list[str]:
        exclude = list(dict.fromkeys(args.get("exclude_items") or []))
        unknown = [x for x in exclude if not any(x in bank.ids for bank, _ in parts)]
        if unknown:
            raise Problem("unknown-item", f"exclude_items: item {unknown[0]!r} is in none of this session's banks.",
                          errors={"exclude_items": [f"unknown item {x!r}" for x in unknown[:10]]})
        return exclude

    # ------------------------------------------------------------------ answer
    def answer(self, tenant: str, sid: str, args: dict, audit=None) -> dict:
        """Apply one answer; returns the rendering after it (the same one again on an idempotent retry).

        Optimistic concurrency: the engine work runs outside any lock on the version read; the
        store then advances the sitting only if its version is unchanged. A writer that loses the
        race starts again and then sees the winner's answer: an identical answer gets the same
        reply, a different one 409.

        ``audit`` (:class:`api.audit.InTransaction`, optional): the request's audit row, written in
        the answer's own transaction when the answer is stored.
        """
        for _ in range(20):
            out = self._answer_once(tenant, sid, args, audit)
            if out is not None:
                return out
        raise Problem("conflict", "The session is changing too fast to take this answer; retry.",  # pragma: no cover
                      headers={"Retry-After": "1"})

    def _answer_once(self, tenant: str, sid: str, args: dict, audit=None) -> dict | None:
        seq, item_id = args["seq"], args["item_id"]
        declined = bool(args.get("declined", False))
        value = None if declined else args["value"]
        hit = self.cache.pop(sid)
        if hit is not None:
            version, battery, rec = hit
            if rec.tenant == tenant and seq == rec.n_responses + 1 and effective_status(rec, utcnow()) == IN_PROGRESS:
                return self._apply_unchecked(rec, battery, item_id, value, declined, audit)
            self.cache.put(sid, version, battery, rec)  # not for this request: back, untouched
        # The response row and the session update commit together, so a response with
        # seq <= n_responses is always there once the session row says so.
        rec = self.store.get_session(sid, tenant)
        if rec is None:
            raise _not_found(sid)
        if seq <= rec.n_responses:
            prev = self.store.get_response(sid, seq)
            if (prev is not None and prev.item_id == item_id and prev.declined == declined
                    and (declined or prev.value == value)):
                return self._reply_at(rec, prev)  # idempotent retry: the same reply as the first time
            raise Problem("seq-conflict",
                          f"Question {seq} was already answered differently; the session is at question "
                          f"{rec.n_responses + 1}. GET the session to see where it is.",
                          seq=seq, next_seq=rec.n_responses + 1 if rec.status == IN_PROGRESS else None)
        now = utcnow()
        _check_open(effective_status(rec, now))
        if seq != rec.n_responses + 1:
            raise Problem("seq-out-of-order", f"The session is at question {rec.n_responses + 1}, but "
                                              f"this answer is for question {seq}.",
                          seq=seq, next_seq=rec.n_responses + 1)
        battery = self.cache.take(sid, rec.version)
        if battery is None:
            battery = self._replay(sid, rec.n_responses)
        # From here the battery object is ours alone (taken out of the cache); it goes back
        # only once the database holds the state it represents.
        if declined:
            battery.decline(item_id)  # engine errors propagate; the object is simply dropped
        else:
            battery.answer(item_id, value)
        return self._write(rec, battery, ResponseRecord(seq, item_id, value, declined, now), audit)

    def _apply_unchecked(self, rec: SessionRecord, battery, item_id: str, value, declined: bool,
                         audit=None) -> dict | None:
        """Apply the answer to a cached sitting without reading its row first; None when the row
        had moved on (the caller then takes the checked path)."""
        try:
            battery.decline(item_id) if declined else battery.answer(item_id, value)
        except CatPromError:
            current = self.store.get_session(rec.id, rec.tenant)
            if current is not None and current.version == rec.version:
                raise  # the cached state was the current one: the answer is wrong
            return None  # stale cache: decide on the current state
        return self._write(rec, battery, ResponseRecord(rec.n_responses + 1, item_id, value, declined, utcnow()),
                           audit)

    def _write(self, rec: SessionRecord, battery, response: ResponseRecord, audit=None) -> dict | None:
        """Store ``response`` (already applied to ``battery``) if the row is still at ``rec.version``."""
        adv = self._advance(rec, battery, response)
        then = None
        if adv.status == FINISHED and self.clinical is not None:
            # domain results, alerts and their outbox rows commit with the finishing answer, or not at all
            def then(conn):
                self.clinical.on_finished(conn, tenant=rec.tenant, patient=rec.patient_ref, session_id=rec.id,
                                          battery=battery, now=response.created_at)
        if not self.store.advance(rec.id, rec.version, adv, then=then,
                                  audit=None if audit is None else audit.rows(rec.patient_ref)):
            return None  # another request moved the session on first (nothing written): start again
        if audit is not None:
            audit.committed(rec.patient_ref)
        new = _advanced(rec, adv)
        if adv.status == FINISHED:
            # A finished sitting takes no more answers (a retry re-renders from the log), so it is
            # not kept: the cache holds only live sittings.
            self.cache.discard(rec.id)
        else:
            self.cache.put(rec.id, adv.version, battery, new)
        return self.render(new, battery, response.created_at)

    def _advance(self, rec: SessionRecord, battery, response: ResponseRecord) -> Advance:
        """What accepting ``response`` (already applied to ``battery``) writes."""
        finished = bool(battery.finished)
        at = response.created_at
        return Advance(version=rec.version + 1, n_responses=response.seq,
                       status=FINISHED if finished else IN_PROGRESS, updated_at=at, expires_at=at + self.ttl,
                       finished_at=at if finished else None,
                       result=jsonable(battery.results()) if finished else None, response=response)

    def _reply_at(self, rec: SessionRecord, response: ResponseRecord) -> dict:
        """The reply that accepting ``response`` gave, rendered again from the log up to it."""
        battery = self._replay(rec.id, response.seq)
        return self.render(_advanced(rec, self._advance(rec, battery, response)), battery, response.created_at)

    def _replay(self, sid: str, upto: int):
        """The sitting's engine object after its first ``upto`` answers (config + log replay)."""
        sitting_from_dict, _ = _engine()
        config, log = self.store.get_replay(sid, upto)
        try:
            battery = sitting_from_dict(self.registry.banks, config)
            for r in log:
                battery.decline(r.item_id) if r.declined else battery.answer(r.item_id, r.value)
        except CatPromError:
            raise Problem("bank-changed", "This session cannot continue: one of its item banks was "
                          "changed or removed since it started. Start a new session.") from None
        return battery

    # -------------------------------------------------------------------- read
    def get(self, tenant: str, sid: str) -> dict:
        """The sitting with its response log (and the current question while in progress)."""
        rec = self.store.get_session(sid, tenant)
        if rec is None:
            raise _not_found(sid)
        now = utcnow()
        config, log = self.store.get_replay(sid, rec.n_responses)
        battery = None
        if effective_status(rec, now) == IN_PROGRESS:
            battery = self.cache.take(sid, rec.version)
            if battery is None:
                battery = self._replay(sid, rec.n_responses)
            self.cache.put(sid, rec.version, battery, rec)
        return self.render(rec, battery, now, answers=log)

    def abandon(self, tenant: str, sid: str) -> None:
        now = utcnow()
        then = None
        if self.clinical is not None:
            def then(conn, before):
                self.clinical.on_abandoned(conn, tenant=tenant, patient=before.patient_ref, session_id=sid,
                                           recent=lambda n: self.store.recent_statuses(conn, tenant,
                                                                                       before.patient_ref, n, now),
                                           now=now)
        before = self.store.abandon(sid, tenant, now, then=then)
        if before is None:
            raise _not_found(sid)
        if before.status == FINISHED:
            raise Problem("session-finished", "A finished session cannot be abandoned; its results are kept.")
        self.cache.discard(sid)

    def patient_results(self, tenant: str, patient: str, limit: int, offset: int, *,
                        since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
        return {"patient": patient, "sessions": [
            {"session_id": r.id, "battery": r.battery_id, "banks": r.bank_ids, "created_at": iso(r.created_at),
             "finished_at": iso(r.finished_at), "results": r.result or []}
            for r in self.store.list_finished(tenant, patient, limit, offset, since=since, until=until)]}

    # ----------------------------------------------------------------- helpers
    def _question(self, battery, seq: int, n_domains: int) -> dict | None:
        item = battery.current_item if battery is not None else None
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
            opts = self._options[key] = jsonable(item.options())
        return opts  # only ever serialised, never mutated


def _advanced(rec: SessionRecord, adv: Advance) -> SessionRecord:
    return dataclasses.replace(rec, version=adv.version, n_responses=adv.n_responses, status=adv.status,
                               updated_at=adv.updated_at, expires_at=adv.expires_at, finished_at=adv.finished_at,
                               result=adv.result)


def _check_open(status: str) -> None:
    if status == ABANDONED:
        raise Problem("session-abandoned", "This session was abandoned (DELETE); start a new one.")
    if status == EXPIRED:
        raise Problem("session-expired", "This session expired after a long pause; start a new one.")
    if status == FINISHED:
        raise Problem("session-finished", "This session is finished and takes no more answers; "
                                          "its scores are in `results`.")


def _not_found(sid: str) -> Problem:
    return Problem("session-not-found", "No session with this id for your API key's tenant.")

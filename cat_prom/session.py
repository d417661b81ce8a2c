"""CAT sessions and batteries: the only mutable objects of the engine.

A :class:`CatSession` is fully determined by its bank, its design, its seed
and its append-only response log; the posterior is a cache. ``to_dict()``
gives that state as plain JSON and :meth:`CatSession.from_dict` rebuilds an
identical session (same estimates, same next item, same random state) by
replaying the log, which is how the service runs stateless workers.

The session is driven from outside::

    s = CatSession(bank)
    while not s.finished:
        item = s.current_item
        s.answer(item.id, ask_patient(item))   # or s.decline(item.id)
    s.result()
"""
from __future__ import annotations

import secrets
from typing import Any, Mapping, Sequence

import numpy as np

from .bank import Item, ItemBank
from .design import Design
from .priors import PreviousSitting, change_call_open, change_probability, log_prior_for, mixture_parts, prior_report, uses_previous
from .evidence import SCORED, score_status
from .state import CatState
from .stopping import code_of
from .errors import (CatPromError, InvalidDesignError, ItemAlreadyAnsweredError, ItemNotOfferedError,
                     SessionFinishedError)

__all__ = ["CatSession", "Sitting", "Battery", "Step", "spawn_seeds", "sitting_from_dict"]


class Step:
    """What an answer produced: the next item, or the finished result.

    Attributes: ``finished``, ``next_item`` (Item or None), ``theta``, ``se``,
    ``t_score`` (all three None while the domain has no answer: it is not scored,
    see :mod:`cat_prom.evidence`), ``stop_reason`` (None until finished), ``bank_id``
    (of the session that took the answer), ``domain_finished`` (that session stopped).
    """

    __slots__ = ("finished", "next_item", "theta", "se", "t_score", "stop_reason", "bank_id", "domain_finished")

    def __init__(self, finished, next_item, theta, se, t_score, stop_reason, bank_id, domain_finished):
        self.finished = finished
        self.next_item = next_item
        self.theta = theta
        self.se = se
        self.t_score = t_score
        self.stop_reason = stop_reason
        self.bank_id = bank_id
        self.domain_finished = domain_finished

    def __repr__(self):
        nxt = self.next_item.id if self.next_item is not None else None
        est = "not scored" if self.theta is None else f"theta={self.theta:.3f}, se={self.se:.3f}"
        return f"Step(finished={self.finished}, next_item={nxt!r}, {est}, stop_reason={self.stop_reason!r})"


_PRECISION_STOPS = frozenset(code_of(r) for r in ("se_target", "se_change", "classification"))


def _new_seed() -> int:
    return secrets.randbits(63)


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent session seeds derived from a battery's master seed (numpy SeedSequence.spawn)."""
    return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(n)]


class CatSession:
    """One adaptive sitting on one bank.

    The CAT itself — estimate, stop rules, item selection — is a
    :class:`~cat_prom.state.CatState` with one row, the same code the simulator runs for
    many; the session adds the guard clauses, the response log and replay.

    Parameters
    ----------
    bank : ItemBank
    design : Design, dict or None
        The CAT policy; ``None`` is the PROMIS default (see :mod:`cat_prom.design`).
    seed : int, optional
        Seed of the session's random generator (exposure control, random
        selection). Drawn at random and recorded when omitted, so that replay
        is always exact.
    exclude : sequence of str
        Item ids never to offer to this patient (added to the design's ``exclude_items``).
    previous : PreviousSitting or dict ``{"theta", "se", "elapsed_days"}``, optional
        The patient's last scored sitting on this bank. Used when the design's prior is
        ``{"type": "previous", ...}`` (:mod:`cat_prom.priors`); otherwise recorded but not used.
        Part of the serialised state, so replay is exact.
    """

    def __init__(self, bank: ItemBank, design: Design | Mapping | None = None, *, seed: int | None = None,
                 exclude: Sequence[str] = (), previous: PreviousSitting | Mapping | None = None):
        if not isinstance(design, Design):
            design = Design.from_dict(design)
        self.bank = bank
        self.design = design
        self.seed = int(seed) if seed is not None else _new_seed()
        self.exclude = tuple(exclude)
        self._rng = np.random.default_rng(self.seed)
        self.previous = PreviousSitting.from_value(previous)
        lp0 = log_prior_for(design.grid_theta(), design.prior, self.previous)
        #: the previous-sitting prior's parts, its change probability and when it gave way (None: never)
        self._mix = mixture_parts(design.grid_theta(), design.prior, self.previous) if lp0 is not None else None
        self.change_probability = 1.0 - design.prior["mixture_weight"] if lp0 is not None else None
        self.switched_after: int | None = None
        self._shifted = None  # sum of the prior shifts a joint battery applied (None: none)
        self._state = state = CatState(bank, design, 1, exclude=self.exclude,
                                       log_prior=None if lp0 is None else lp0[None, :])
        self._tables = state.tables
        self._status: dict[int, str] = {}
        self.log: list[dict] = []
        self.finished = False
        self.stop_reason: str | None = None
        self.stop_detail = ""
        self._current = -1
        self._read_estimate()
        code = state.start(self._rng).item(0)
        if code:
            self._finish(code)
        else:
            self._current = state.current.item(0)

    # ----------------------------------------------------------- internals
    def _read_estimate(self, x=None) -> None:
        state = self._state
        if x is None:
            x = state.row(0)
        self.theta, self.se = x.theta, x.se
        self.flag = "" if state.flags is None else state.flags[0]

    def _finish(self, code: int) -> None:
        d = self._state.decision(0, code)
        self.finished = True
        self.stop_reason = d.reason
        self.stop_detail = d.detail
        self._current = -1

    def _guard(self, item_id: str) -> int:
        if self.finished:
            raise SessionFinishedError(f"session on bank {self.bank.id!r} has finished ({self.stop_reason}); "
                                       f"it takes no further answers", stop_reason=self.stop_reason)
        cur = self._current
        if cur >= 0 and self.bank.ids[cur] == item_id:
            return cur
        j = self.bank.index(item_id)  # raises UnknownItemError
        if j in self._status:
            raise ItemAlreadyAnsweredError(f"item {item_id!r} was already {self._status[j]} in this session",
                                           item_id=item_id)
        raise ItemNotOfferedError(f"item {item_id!r} is not the question being offered "
                                  f"(the current question is {self.bank.ids[cur]!r})", item_id=item_id,
                                  current_item=self.bank.ids[cur])

    def _after(self) -> Step:
        state = self._state
        x = state.row(0)  # what the stop rules read, as numbers
        self._read_estimate(x)
        code = state.rules.first(x)
        if code in _PRECISION_STOPS and (self._change_unresolved() or self._change_call_open()):
            code = 0  # the previous-sitting prior's question is open: ask on (max_items still stops)
        if code:
            self._finish(code)
        else:
            # an item is eligible (bank_exhausted did not fire), and selection falls back from content
            # and Sympson-Hetter restrictions to every eligible item, so it always finds one
            self._current = state.select(self._rng).item(0)
        nxt = None if self.finished else self.bank.items[self._current]
        if self.scored:
            return Step(self.finished, nxt, self.theta, self.se, self.t_score, self.stop_reason, self.bank.id,
                        self.finished)
        return Step(self.finished, nxt, None, None, None, self.stop_reason, self.bank.id, self.finished)

    # ------------------------------------------------------------ public API
    @property
    def current_item(self) -> Item | None:
        """The item being offered now; ``None`` once the session has finished."""
        return None if self._current < 0 else self.bank.items[self._current]

    @property
    def uses_previous_prior(self) -> bool:
        """Whether this sitting's prior is the previous-sitting mixture (:mod:`cat_prom.priors`)."""
        return uses_previous(self.design.prior, self.previous)

    @property
    def n_answered(self) -> int:
        return self._state.n_answered

    @property
    def n_asked(self) -> int:
        return self._state.n_asked

    @property
    def scored(self) -> bool:
        """Whether the domain has a score: at least one answer (see :mod:`cat_prom.evidence`).

        ``theta``, ``se``, ``t_score`` and ``t_se`` are the CAT's working estimate (the prior's
        before any answer); :meth:`result` reports them only when this is true.
        """
        return self._state.n_answered > 0

    @property
    def status(self) -> tuple[str, str | None]:
        """``(status, status_reason)``: :func:`cat_prom.evidence.score_status` of the sitting so far."""
        state = self._state
        return score_status(state.n_asked, state.n_answered, self.finished)

    @property
    def t_score(self) -> float:
        return self.bank.t_mean + self.bank.t_sd * self.theta

    @property
    def t_se(self) -> float:
        return self.bank.t_sd * self.se

    @property
    def posterior(self) -> np.ndarray:
        """Normalised posterior weights on the design's grid, shape (n_points,)."""
        return self._state.W[0]

    @property
    def log_posterior(self) -> np.ndarray:
        """Unnormalised log posterior on the design's grid, shape (n_points,) (read it, do not change it)."""
        return self._state.lp[0]

    def answer(self, item_id: str, value: Any) -> Step:
        """Record the patient's response ``value`` to the offered item and move on."""
        self._take(item_id, value)
        return self._after()

    def decline(self, item_id: str) -> Step:
        """Record that the patient declined the offered item; it is not asked again and counts as missing."""
        self._take(item_id, None, declined=True)
        return self._after()

    def _take(self, item_id: str, value: Any, declined: bool = False) -> None:
        """Guard, record and apply an answer (or a decline) without deciding what comes next."""
        j = self._guard(item_id)
        if declined:
            self._state.decline(j)
            self._status[j] = "declined"
            self.log.append({"item_id": item_id, "declined": True})
            return
        k = self.bank.category(j, value)  # raises ValueOutOfRangeError
        self._state.answer(j, k)
        self._status[j] = "answered"
        self.log.append({"item_id": item_id, "value": value})
        if self._mix is not None and self.switched_after is None:
            self._check_change()
        self._read_estimate()

    def _change_unresolved(self) -> bool:
        """Previous-sitting prior, not dropped, and the answers do not yet confirm the last sitting:
        P(change) above ``confirm_below``. Precision stops wait (a sequential test of "as last time"
        against "changed": it ends by confirming, or by switching to the population prior)."""
        return (self._mix is not None and self.switched_after is None
                and self.change_probability > self.design.prior["confirm_below"])

    def _change_call_open(self) -> bool:
        """Previous-sitting prior with ``change_confidence`` > 0: whether the reliable-change call against the last
        sitting is still open (:func:`cat_prom.priors.change_call_open`). Precision stops wait while it is."""
        conf = self.design.prior.get("change_confidence") if self._mix is not None else None
        return bool(conf) and change_call_open(self.theta, self.se, self.previous, conf)

    def _check_change(self) -> None:
        """Previous-sitting prior: when the answers make a change more likely than ``switch_at``, drop the
        previous component and go on under the alternative one (the population prior, or with ``jump_sd`` the
        previous component widened by a jump; :func:`cat_prom.priors.change_probability`)."""
        log_mix, log_pop = self._mix
        p = self.design.prior
        own = self._state.lp[0] if self._shifted is None else self._state.lp[0] - self._shifted  # this domain's answers
        self.change_probability = change_probability(own, log_mix, log_pop, p["mixture_weight"])
        if self.change_probability > p["switch_at"]:
            self._state.shift_log_prior(log_pop - log_mix)
            self.switched_after = self._state.n_answered

    def _shift_prior(self, delta) -> None:
        """Replace the prior under the answers given (:meth:`CatState.shift_log_prior`); estimate re-read."""
        self._state.shift_log_prior(delta)
        self._shifted = delta if self._shifted is None else self._shifted + delta
        self._read_estimate()

    def _redecide(self) -> None:
        """Stop or choose the next item again after the prior moved (the joint battery): before the first
        answer by the start rule, after it by the stop rules and the selection rule."""
        if self.finished:
            return
        if self._state.n_asked == 0:
            code = self._state.start(self._rng).item(0)
            if code:
                self._finish(code)
            else:
                self._current = self._state.current.item(0)
            return
        self._after()

    def result(self) -> dict:
        """Scores and provenance of the sitting so far (final once ``finished``).

        ``status`` is ``"scored"`` or ``"not_scored"``; a domain with no answer is not scored:
        ``theta``, ``se``, ``t_score``, ``t_se`` and ``band`` are None, ``flag`` is empty and
        ``status_reason`` says why (:mod:`cat_prom.evidence`).
        """
        state = self._state
        status, why = self.status
        scored = status == SCORED
        t = self.t_score if scored else None
        return {
            "bank_id": self.bank.id,
            "bank_version": self.bank.version,
            "domain": self.bank.domain,
            "direction": self.bank.direction,
            "finished": self.finished,
            "status": status,
            "status_reason": why,
            "theta": self.theta if scored else None,
            "se": self.se if scored else None,
            "t_score": t,
            "t_se": self.t_se if scored else None,
            "band": self.bank.band(t) if scored else None,
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "estimator": self.design.estimator,
            "prior": prior_report(self.design.prior, self.previous, change_probability=self.change_probability,
                                  switched_after=self.switched_after),
            "flag": self.flag if scored else "",
            "n_answered": state.n_answered,
            "n_declined": state.n_asked - state.n_answered,
            "items": [
                {"item_id": self.bank.ids[j], "status": self._status[j],
                 "value": self.bank.items[j].values[k] if k >= 0 else None}
                for j, k in zip(state.items[0, :state.n_asked].tolist(), state.cats[0, :state.n_asked].tolist())
            ],
        }

    def to_dict(self) -> dict:
        """The session's complete state as plain JSON: bank, design, seed, previous sitting (when given) and response log."""
        d = {
            "bank_id": self.bank.id,
            "bank_hash": self.bank.content_hash,
            "design": self.design.to_dict(),
            "seed": self.seed,
            "exclude": list(self.exclude),
            "log": [dict(e) for e in self.log],
        }
        if self.previous is not None:  # the prior's input: replay rebuilds the same prior
            d["previous"] = self.previous.to_dict()
        return d

    @classmethod
    def from_dict(cls, bank: ItemBank, d: Mapping[str, Any], *, check_hash: bool = True) -> "CatSession":
        """Rebuild a session by replaying its response log on ``bank``."""
        if d.get("bank_id") not in (None, bank.id):
            raise CatPromError(f"session was run on bank {d.get('bank_id')!r}, not {bank.id!r}")
        if check_hash and d.get("bank_hash") and d["bank_hash"] != bank.content_hash:
            raise CatPromError(f"session was run on another version of bank {bank.id!r} "
                               f"({d['bank_hash']}, now {bank.content_hash}); it cannot be replayed exactly")
        s = cls(bank, d.get("design"), seed=d["seed"], exclude=d.get("exclude", ()), previous=d.get("previous"))
        for e in d.get("log", ()):
            s.replay(e)
        return s

    def replay(self, entry: Mapping[str, Any]) -> Step:
        """Apply one log entry (``{"item_id", "value"}`` or ``{"item_id", "declined": true}``)."""
        if entry.get("declined"):
            return self.decline(entry["item_id"])
        return self.answer(entry["item_id"], entry["value"])


class Sitting:
    """What every multi-domain sitting shares (:class:`Battery`, :class:`~cat_prom.joint_battery.JointBattery`):
    one :class:`CatSession` per domain built from a master seed, the domain now asking
    (``domain_index``), and the guard that an answer is for the question on offer."""

    def _make_sessions(self, entries: Sequence[tuple], seed: int | None, exclude: Sequence[str], id: str | None,
                       previous: Mapping[str, Any] | None) -> None:
        if not entries:
            raise InvalidDesignError("a battery needs at least one bank", field="banks")
        self.id = id
        self.seed = int(seed) if seed is not None else _new_seed()
        self.exclude = tuple(exclude)
        ids = [b.id for b, _ in entries]
        if len(set(ids)) != len(ids):
            raise InvalidDesignError(f"a bank appears twice in the battery: {ids}", field="banks")
        previous = dict(previous or {})
        unknown = sorted(set(previous) - set(ids))
        if unknown:
            raise InvalidDesignError(f"a previous sitting was given for bank {unknown[0]!r}, which is not in the "
                                     f"battery ({', '.join(ids)})", field="previous")
        self.sessions: list[CatSession] = []
        for (bank, design), sd in zip(entries, spawn_seeds(self.seed, len(entries))):
            ex = [x for x in self.exclude if x in bank._index]
            self.sessions.append(CatSession(bank, design, seed=sd, exclude=ex, previous=previous.get(bank.id)))
        self.domain_index = 0

    @property
    def finished(self) -> bool:
        return self.domain_index >= len(self.sessions)

    @property
    def current_session(self) -> CatSession | None:
        return None if self.finished else self.sessions[self.domain_index]

    @property
    def current_item(self) -> Item | None:
        s = self.current_session
        return None if s is None else s.current_item

    @property
    def current_bank(self) -> ItemBank | None:
        s = self.current_session
        return None if s is None else s.bank

    @property
    def position(self) -> int:
        """1-based number of the question now offered in the whole sitting (total asked + 1)."""
        return sum(s.n_asked for s in self.sessions) + (0 if self.finished else 1)

    def _session_for(self, item_id: str) -> CatSession:
        if self.finished:
            raise SessionFinishedError("the battery has finished; it takes no further answers")
        s = self.sessions[self.domain_index]
        if item_id not in s.bank._index:
            for other in self.sessions:
                if item_id in other.bank._index:
                    cur = s.current_item.id
                    raise ItemNotOfferedError(f"item {item_id!r} (bank {other.bank.id!r}) is not the question being "
                                              f"offered (the current question is {cur!r})", item_id=item_id,
                                              current_item=cur)
        return s


class Battery(Sitting):
    """Several banks in one sitting, each with its own design, reported per domain.

    Parameters
    ----------
    entries : sequence of (ItemBank, Design | dict | None)
        The domains in the order they are administered.
    seed : int, optional
        Master seed; each domain's seed derives from it.
    exclude : sequence of str
        Item ids to exclude, in whichever bank they occur.
    previous : mapping bank id -> PreviousSitting or dict, optional
        Each domain's last scored sitting (see :class:`CatSession`); domains left out have none.
    """

    def __init__(self, entries: Sequence[tuple], *, seed: int | None = None, exclude: Sequence[str] = (),
                 id: str | None = None, previous: Mapping[str, Any] | None = None):
        self._make_sessions(entries, seed, exclude, id, previous)
        self._advance()

    def _advance(self) -> None:
        while self.domain_index < len(self.sessions) and self.sessions[self.domain_index].finished:
            self.domain_index += 1

    def answer(self, item_id: str, value: Any) -> Step:
        s = self._session_for(item_id)
        step = s.answer(item_id, value)
        return self._step(step)

    def decline(self, item_id: str) -> Step:
        s = self._session_for(item_id)
        return self._step(s.decline(item_id))

    def _step(self, step: Step) -> Step:
        self._advance()
        if self.finished:  # the step's estimates are those of the session that took the answer (None: not scored)
            return Step(True, None, step.theta, step.se, step.t_score, step.stop_reason, step.bank_id, True)
        return Step(False, self.current_item, step.theta, step.se, step.t_score, step.stop_reason, step.bank_id,
                    step.domain_finished)

    def results(self) -> list[dict]:
        """One result dict per domain, in administration order."""
        return [s.result() for s in self.sessions]

    def to_dict(self) -> dict:
        return {"battery_id": self.id, "seed": self.seed, "exclude": list(self.exclude),
                "sessions": [s.to_dict() for s in self.sessions]}

    @classmethod
    def from_dict(cls, banks: Mapping[str, ItemBank], d: Mapping[str, Any]) -> "Battery":
        """Rebuild a battery from :meth:`to_dict` output; ``banks`` maps bank id to bank."""
        entries = []
        for sd in d["sessions"]:
            if sd["bank_id"] not in banks:
                raise CatPromError(f"bank {sd['bank_id']!r} of this battery is not loaded")
            entries.append((banks[sd["bank_id"]], sd.get("design")))
        previous = {sd["bank_id"]: sd["previous"] for sd in d["sessions"] if sd.get("previous") is not None}
        b = cls(entries, seed=d["seed"], exclude=d.get("exclude", ()), id=d.get("battery_id"), previous=previous)
        for s, sd in zip(b.sessions, d["sessions"]):
            if sd.get("bank_hash") and sd["bank_hash"] != s.bank.content_hash:
                raise CatPromError(f"battery was run on another version of bank {s.bank.id!r}; it cannot be replayed")
        # replay in the order answers were given: domain by domain
        for s, sd in zip(b.sessions, d["sessions"]):
            for e in sd.get("log", ()):
                s.replay(e)
        b._advance()
        return b


def sitting_from_dict(banks: Mapping[str, ItemBank], d: Mapping[str, Any]) -> Sitting:
    """Rebuild any multi-domain sitting from its ``to_dict()`` output: a
    :class:`~cat_prom.joint_battery.JointBattery` when ``d["scoring"]`` is ``"joint"``, else a
    :class:`Battery` (whose state has no ``scoring``)."""
    if d.get("scoring", "separate") == "joint":
        from .joint_battery import JointBattery
        return JointBattery.from_dict(banks, d)
    if d.get("scoring", "separate") != "separate":
        raise CatPromError(f"unknown scoring {d.get('scoring')!r} in a stored sitting; it cannot be replayed")
    return Battery.from_dict(banks, d)

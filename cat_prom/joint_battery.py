"""A battery scored jointly: domains borrow strength through their correlations (:mod:`cat_prom.joint`).

:class:`JointBattery` is driven like :class:`~cat_prom.session.Battery` (``current_item``,
``answer``, ``decline``, ``results``, ``to_dict``/``from_dict``), with one :class:`CatSession` per
domain for the guards, the logs and the results. What differs:

* after every answer the joint posterior is updated by expectation propagation: each domain's
  prior becomes its *cavity* (the population prior conditioned on what the other domains' answers
  say), and its θ̂ and SE are its grid posterior under that prior;
* the next question comes from the domain whose candidate item adds most to the joint posterior
  precision (D-optimality, Segall 1996; ``order="d_optimal"``), or from the first unfinished domain
  in battery order (``order="battery"``); within a domain the domain's own design chooses the item;
* a domain whose previous-sitting prior gives way (its answers disagree with the last sitting,
  :mod:`cat_prom.priors`) leaves the joint model for the rest of the sitting: it changed on its own,
  so it is scored on its own, exactly as in separate scoring (``joint.scored_alone``);
* each domain stops by its own design's rules, evaluated after every answer (its SE also shrinks
  with the other domains' answers), but never before its own ``min_items`` (at least 1) answers:
  a domain is never scored without an answer of its own.

The order of answers across domains is part of the state (``sequence``), so replay is exact.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from . import joint
from .bank import Item, ItemBank
from .battery_file import ORDERS
from .design import Design
from .errors import CatPromError, InvalidBatteryError, InvalidDesignError, SessionFinishedError, ItemNotOfferedError
from .grid import normal_log_density
from .session import CatSession, Step, _new_seed, spawn_seeds

__all__ = ["JointBattery", "ORDERS"]

_SWEEPS = 50  # EP sweeps at most per answer (typically 4-6)
_TOL = 1e-5  # largest change of a site parameter (τ, ν) that ends the sweeps
_MOVE = 1e-7  # during the sweeps, a cavity mean or variance that moved less than this is not re-applied


class JointBattery:
    """Several banks in one sitting, scored jointly with a multivariate normal prior over the domains.

    Parameters
    ----------
    entries : sequence of (ItemBank, Design | dict | None)
        The domains (battery order). Every design must use the EAP estimator and ``min_items`` >= 1.
    correlation : array_like (D, D)
        Correlation matrix of the domains' latent traits, in the order of ``entries``
        (:func:`cat_prom.joint.check_correlation`). The prior means and SDs are each design's ``prior``.
    order : {"d_optimal", "battery"}
        How the next domain is chosen.
    seed, exclude, id, previous
        As for :class:`~cat_prom.session.Battery`.
    """

    def __init__(self, entries: Sequence[tuple], correlation, *, order: str = "d_optimal", seed: int | None = None,
                 exclude: Sequence[str] = (), id: str | None = None, previous: Mapping[str, Any] | None = None):
        if not entries:
            raise InvalidDesignError("a battery needs at least one bank", field="banks")
        if order not in ORDERS:
            raise InvalidDesignError(f"order must be one of {list(ORDERS)}, got {order!r}", field="order")
        ids = [b.id for b, _ in entries]
        if len(set(ids)) != len(ids):
            raise InvalidDesignError(f"a bank appears twice in the battery: {ids}", field="banks")
        designs = [d if isinstance(d, Design) else Design.from_dict(d) for _, d in entries]
        for bank, d in zip((b for b, _ in entries), designs):
            if d.estimator != "eap" or d.min_items < 1:
                raise InvalidDesignError(f"joint scoring needs the EAP estimator and min_items >= 1 in every domain; "
                                         f"bank {bank.id!r} has estimator {d.estimator!r}, min_items {d.min_items}",
                                         field="designs")
        self.R = joint.check_correlation(correlation, len(entries))
        self.id, self.order = id, order
        self.seed = int(seed) if seed is not None else _new_seed()
        self.exclude = tuple(exclude)
        previous = dict(previous or {})
        unknown = sorted(set(previous) - set(ids))
        if unknown:
            raise InvalidDesignError(f"a previous sitting was given for bank {unknown[0]!r}, which is not in the "
                                     f"battery ({', '.join(ids)})", field="previous")
        self.sessions: list[CatSession] = []
        for (bank, _), design, sd in zip(entries, designs, spawn_seeds(self.seed, len(entries))):
            ex = [x for x in self.exclude if x in bank._index]
            self.sessions.append(CatSession(bank, design, seed=sd, exclude=ex, previous=previous.get(bank.id)))
        D = len(entries)
        self.mu = np.array([d.prior["mean"] for d in designs], dtype=float)
        self.Sigma = joint.covariance([d.prior["sd"] for d in designs], self.R)
        self.tau, self.nu = np.zeros(D), np.zeros(D)
        #: the cavity (mean, variance) each domain's posterior now uses as its prior
        self.cav = [(float(self.mu[d]), float(self.Sigma[d, d])) for d in range(D)]
        self.sequence: list[str] = []  # bank id of every answer or decline, in order
        self.sweeps = 0  # EP sweeps of the last update
        self._propagate(answered=None)
        self.domain_index = self._next_domain()

    # ------------------------------------------------------------ joint posterior
    def _has_factor(self, d: int) -> bool:
        s = self.sessions[d]
        return s.n_answered > 0 or s.uses_previous_prior

    def _propagate(self, answered: int | None) -> None:
        """Expectation propagation to convergence, then new decisions where the estimate moved.

        Only domains with a factor (answers, or a previous-sitting prior) take part in the sweeps; a
        cavity that moved by less than ``_MOVE`` is left as it is during the sweeps. After convergence
        every domain's prior is set to its final cavity."""
        D = len(self.sessions)
        theta = [s.design.grid_theta() for s in self.sessions]
        shifted = [False] * D
        Sigma = self._effective_sigma()
        active = [d for d in range(D) if self._has_factor(d)]

        def move(d: int, m: float, v: float) -> None:
            old_m, old_v = self.cav[d]
            self.sessions[d]._shift_prior(normal_log_density(theta[d], m, v ** 0.5)
                                          - normal_log_density(theta[d], old_m, old_v ** 0.5))
            self.cav[d] = (m, v)
            shifted[d] = True

        for sweep in range(_SWEEPS):
            change = 0.0
            means, variances = joint.cavities(self.mu, Sigma, self.tau, self.nu)  # parallel EP
            for d in active:
                s, m, v = self.sessions[d], means[d], variances[d]
                old_m, old_v = self.cav[d]
                if abs(m - old_m) > _MOVE or abs(v - old_v) > _MOVE:
                    move(d, m, v)
                t, n = joint.site(s.theta, s.se * s.se, *self.cav[d])
                change = max(change, abs(t - self.tau[d]), abs(n - self.nu[d]))
                self.tau[d], self.nu[d] = t, n
            self.sweeps = sweep + 1
            if change < _TOL:
                break
        means, variances = joint.cavities(self.mu, Sigma, self.tau, self.nu)
        for d in range(D):
            if (means[d], variances[d]) != self.cav[d]:
                move(d, means[d], variances[d])
        for d, s in enumerate(self.sessions):
            if d == answered:
                s._after()
            elif shifted[d]:
                s._redecide()

    def _effective_sigma(self) -> np.ndarray:
        """The prior covariance with the domains that left the joint model uncorrelated with the others: a domain
        whose answers disagreed with its previous sitting (its previous-sitting prior gave way) changed on its own,
        so it is scored on its own, as in separate scoring, and lends nothing to the others."""
        alone = [d for d, s in enumerate(self.sessions) if s.switched_after is not None]
        if not alone:
            return self.Sigma
        S = self.Sigma.copy()
        for d in alone:
            S[d, :] = 0.0
            S[:, d] = 0.0
            S[d, d] = self.Sigma[d, d]
        return S

    def posterior_covariance(self) -> np.ndarray:
        """Covariance of the Gaussian approximation of the joint posterior, (D, D) (:mod:`cat_prom.joint`)."""
        return joint.posterior_covariance(self._effective_sigma(), self.tau)

    def gains(self) -> list[float | None]:
        """D-optimality gain of each domain's candidate item (``None`` for a finished domain)."""
        C = self.posterior_covariance()
        out = []
        for d, s in enumerate(self.sessions):
            it = s.current_item
            if s.finished or it is None:
                out.append(None)
                continue
            info = s._tables.info_at(s.theta)[s.bank.index(it.id)]
            out.append(joint.d_optimal_gain(C, d, float(info)))
        return out

    def _next_domain(self) -> int:
        open_ = [d for d, s in enumerate(self.sessions) if not s.finished]
        if not open_:
            return len(self.sessions)
        if self.order == "battery" or len(open_) == 1:
            return open_[0]
        g = self.gains()
        return max(open_, key=lambda d: (g[d], -d))  # ties: battery order

    # ------------------------------------------------------------ the Battery interface
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

    def answer(self, item_id: str, value: Any) -> Step:
        return self._take(item_id, value, False)

    def decline(self, item_id: str) -> Step:
        return self._take(item_id, None, True)

    def _take(self, item_id: str, value: Any, declined: bool) -> Step:
        d = self.domain_index
        s = self._session_for(item_id)
        s._take(item_id, value, declined)
        self.sequence.append(s.bank.id)
        self._propagate(answered=d)
        self.domain_index = self._next_domain()
        if self.finished:
            return Step(True, None, s.theta, s.se, s.t_score, s.stop_reason, s.bank.id, True)
        return Step(False, self.current_item, s.theta, s.se, s.t_score, s.stop_reason, s.bank.id, s.finished)

    def results(self) -> list[dict]:
        """One result per domain (battery order), each from the joint posterior, with ``scoring`` "joint" and
        ``joint``: the domain's cavity prior (what the other domains' answers said about it) and the banks it
        borrowed from."""
        out = []
        S = self._effective_sigma()
        for d, s in enumerate(self.sessions):
            r = s.result()
            m, v = self.cav[d]
            lent = [o.bank.id for e, o in enumerate(self.sessions) if e != d and self.tau[e] > 0 and S[d, e] != 0]
            r["scoring"] = "joint"
            r["joint"] = {"cavity": {"mean": m, "sd": v ** 0.5}, "borrowed_from": lent,
                          "scored_alone": s.switched_after is not None}
            out.append(r)
        return out

    def to_dict(self) -> dict:
        return {"battery_id": self.id, "seed": self.seed, "exclude": list(self.exclude), "scoring": "joint",
                "order": self.order, "correlation": self.R.tolist(), "sequence": list(self.sequence),
                "sessions": [s.to_dict() for s in self.sessions]}

    @classmethod
    def from_dict(cls, banks: Mapping[str, ItemBank], d: Mapping[str, Any]) -> "JointBattery":
        """Rebuild from :meth:`to_dict` output by replaying the answers in the order they were given."""
        entries = []
        for sd in d["sessions"]:
            if sd["bank_id"] not in banks:
                raise CatPromError(f"bank {sd['bank_id']!r} of this battery is not loaded")
            b = banks[sd["bank_id"]]
            if sd.get("bank_hash") and sd["bank_hash"] != b.content_hash:
                raise CatPromError(f"battery was run on another version of bank {b.id!r}; it cannot be replayed")
            entries.append((b, sd.get("design")))
        previous = {sd["bank_id"]: sd["previous"] for sd in d["sessions"] if sd.get("previous") is not None}
        jb = cls(entries, d["correlation"], order=d.get("order", "d_optimal"), seed=d["seed"],
                 exclude=d.get("exclude", ()), id=d.get("battery_id"), previous=previous)
        logs = {sd["bank_id"]: list(sd.get("log", ())) for sd in d["sessions"]}
        pos = {k: 0 for k in logs}
        for bid in d.get("sequence", ()):
            if bid not in logs or pos[bid] >= len(logs[bid]):
                raise InvalidBatteryError(f"the battery's answer sequence names bank {bid!r} more often than its log "
                                          f"has answers", field="sequence")
            e = logs[bid][pos[bid]]
            pos[bid] += 1
            jb._take(e["item_id"], e.get("value"), bool(e.get("declined")))
        return jb

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
* a domain with a previous-sitting prior (:mod:`cat_prom.priors`) is scored on its own, exactly as in
  separate scoring (``joint.scored_alone``): the multivariate normal prior ties the domains' *levels* as
  the population shows them, and the previous sitting already tells the domain's level for this patient
  (from a posterior that had that population prior in it), so tying it again counts the population twice.
  What would tie the domains at a follow-up is how their *changes* correlate, which the battery file does
  not give. The double counting is what hid flares: a flare in one domain was pulled back towards the
  unchanged, correlated others (``benchmarks/results/longitudinal_burden.md``: 37-43 % of +1 SD flares
  flagged against 48.5 % with separate scoring). Domains without a previous sitting still borrow from each
  other, so a first sitting (and a new domain in a returning patient's battery) is scored jointly;
* each domain stops by its own design's rules, evaluated after every answer (its SE also shrinks
  with the other domains' answers), but never before its own ``min_items`` (at least 1) answers:
  a domain is never scored without an answer of its own.

The order of answers across domains is part of the state (``sequence``), so replay is exact.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from . import joint
from .bank import ItemBank
from .battery_file import ORDERS
from .design import Design
from .errors import CatPromError, InvalidBatteryError, InvalidDesignError
from .grid import normal_log_density
from .session import Sitting, Step

__all__ = ["JointBattery", "ORDERS"]

_SWEEPS = 50  # EP sweeps at most per answer (typically 4-6)
_TOL = 1e-5  # largest change of a site parameter (τ, ν) that ends the sweeps
_MOVE = 1e-7  # during the sweeps, a cavity mean or variance that moved less than this is not re-applied


class JointBattery(Sitting):
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
        if order not in ORDERS:
            raise InvalidDesignError(f"order must be one of {list(ORDERS)}, got {order!r}", field="order")
        entries = [(b, d if isinstance(d, Design) else Design.from_dict(d)) for b, d in entries]
        designs = [d for _, d in entries]
        for (bank, d) in entries:
            if d.estimator != "eap" or d.min_items < 1:
                raise InvalidDesignError(f"joint scoring needs the EAP estimator and min_items >= 1 in every domain; "
                                         f"bank {bank.id!r} has estimator {d.estimator!r}, min_items {d.min_items}",
                                         field="designs")
        self.R = joint.check_correlation(correlation, len(entries))
        self.order = order
        self._make_sessions(entries, seed, exclude, id, previous)
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
        """The prior covariance with the domains that have a previous-sitting prior uncorrelated with the others:
        such a domain is scored on its own, as in separate scoring, and lends nothing to the others (module
        docstring: its previous sitting already carries the population's information about its level)."""
        alone = [d for d, s in enumerate(self.sessions) if s.uses_previous_prior]
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
        est = (s.theta, s.se, s.t_score) if s.scored else (None, None, None)  # no answer: not scored
        if self.finished:
            return Step(True, None, *est, s.stop_reason, s.bank.id, True)
        return Step(False, self.current_item, *est, s.stop_reason, s.bank.id, s.finished)

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
                          "scored_alone": s.uses_previous_prior}
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

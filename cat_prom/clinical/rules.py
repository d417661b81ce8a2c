r"""Alert rules: pure functions from a domain's scores to alert records, each with how sure it is.

A rule *fires* only when the probability that its condition is true, given the patient's
answers, reaches the configured certainty (default 0.8); a domain that is not scored
(:mod:`cat_prom.evidence`) never fires a score rule.

=======================  ================================================================  =====================
rule                     condition (worse side: above on ``higher_is_worse`` banks,         certainty
                         below on ``higher_is_better`` banks)
=======================  ================================================================  =====================
``above_acceptable``     the true T is on the worse side of the patient's acceptable T     posterior probability
``severe_band``          the true T lies in the bank's ``severe`` band                     posterior probability
``worse_than_previous``  the true change since the previous scored sitting is a worsening  normal approximation
                         of at least the MID
``worse_than_baseline``  the same against the baseline (first scored or marked) sitting    normal approximation
``abandoned_sittings``   the last ``n`` sittings (default 3) were abandoned or expired     1 (observed)
=======================  ================================================================  =====================

The posterior probability is :func:`cat_prom.clinical.certainty.prob_beyond` on the session's
grid posterior (or, for a result stored without it, the normal approximation
:math:`\Phi((\hat T - c)/SE)`; the record's ``certainty_method`` says which). For change rules
the true worsening :math:`W` is taken as normal around the observed worsening :math:`w` with
the SE of the change, :math:`W \sim N(w, SE_1^2 + SE_2^2)`, so
:math:`P(W \ge MID) = \Phi((w - MID)/\sqrt{SE_1^2 + SE_2^2})` — a normal approximation
(each score's own posterior is close to normal after a CAT; the two are independent).

The configuration is a JSON document (:class:`RuleConfig`, ``docs/clinicians.md``); the
simulator's cohort alert-rate study (:mod:`cat_prom.clinical.cohort`) reads the same file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import ndtr

from ..errors import InvalidRulesError
from ..evidence import SCORED, score_status
from .certainty import prob_beyond_normal, prob_worse_than, worse_side
from .change import DEFAULT_MID, change, worse_sign

__all__ = ["RULES", "SCORE_RULES", "DEFAULT_CERTAINTY", "ACCEPTABLE_POLICIES", "RuleConfig", "DomainScore",
           "severe_threshold", "evaluate_domain", "evaluate_abandoned", "INCOMPLETE"]

SCORE_RULES = ("above_acceptable", "severe_band", "worse_than_previous", "worse_than_baseline")
RULES = SCORE_RULES + ("abandoned_sittings",)
DEFAULT_CERTAINTY = 0.8
ACCEPTABLE_POLICIES = ("fixed", "baseline_offset")
#: sitting statuses that count as abandoned for ``abandoned_sittings``
INCOMPLETE = ("abandoned", "expired")
_DEFAULT_ENABLED = {"above_acceptable": True, "severe_band": True, "worse_than_previous": True,
                    "worse_than_baseline": True, "abandoned_sittings": False}


def _bad(msg: str, key: str) -> InvalidRulesError:
    return InvalidRulesError(msg, field=key)


def _num(v, key, *, lo=None, hi=None, lo_open=False, integer=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"rules key {key!r} must be a {'whole ' if integer else ''}number, got {v!r}", key)
    if integer and int(v) != v:
        raise _bad(f"rules key {key!r} must be a whole number, got {v!r}", key)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise _bad(f"rules key {key!r} must be {'>' if lo_open else '>='} {lo}, got {v!r}", key)
    if hi is not None and v > hi:
        raise _bad(f"rules key {key!r} must be <= {hi}, got {v!r}", key)
    return int(v) if integer else float(v)


def _obj(v, key, allowed=None) -> dict:
    if not isinstance(v, Mapping):
        raise _bad(f"rules key {key!r} must be an object, got {type(v).__name__}", key)
    if allowed is not None:
        extra = sorted(set(v) - set(allowed))
        if extra:
            raise _bad(f"unknown rules key '{key}.{extra[0]}'; allowed: {', '.join(allowed)}", f"{key}.{extra[0]}")
    return dict(v)


def _per_bank(v, key, **limits) -> tuple[float | None, dict]:
    """``{"default": x, "<bank id>": y, ...}`` (or a bare number: the default) -> (default, {bank: value})."""
    if not isinstance(v, Mapping):
        return _num(v, key, **limits), {}
    d = _obj(v, key)
    default = d.pop("default", None)
    default = None if default is None else _num(default, f"{key}.default", **limits)
    return default, {str(b): _num(x, f"{key}.{b}", **limits) for b, x in d.items()}


@dataclass(frozen=True)
class RuleConfig:
    """A tenant's (or a simulation's) alert configuration. Build with :meth:`from_dict` or :meth:`load`.

    Document keys (all optional)::

        {"format": "cat-prom-rules/1",
         "certainty": 0.8,                       # every rule fires at P >= this ...
         "mid_t": {"default": 5, "pain-intensity": 4},   # MID per bank, T points
         "acceptable": {"policy": "fixed", "t": {"default": 60, "physical-function": 40},
                        "offset_t": 5},           # clinic-wide acceptable levels (simulation: policy)
         "rules": {"above_acceptable": {"enabled": true, "certainty": 0.9},  # ... unless set per rule
                   "severe_band": {}, "worse_than_previous": {}, "worse_than_baseline": {},
                   "abandoned_sittings": {"enabled": true, "n": 3}}}
    """

    certainty: float = DEFAULT_CERTAINTY
    mid_default: float = DEFAULT_MID
    mid_by_bank: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    acceptable_policy: str = "fixed"
    acceptable_default_t: float | None = None
    acceptable_by_bank: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    acceptable_offset_t: float = 5.0
    enabled: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType(dict(_DEFAULT_ENABLED)))
    rule_certainty: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    abandoned_n: int = 3

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None) -> "RuleConfig":
        """Validate a rules document (see the class docstring); unknown keys are an error."""
        if d is None:
            return cls()
        d = _obj(d, "rules document", ("format", "certainty", "mid_t", "acceptable", "rules", "description"))
        if "format" in d and d["format"] != "cat-prom-rules/1":
            raise _bad(f"rules 'format' must be 'cat-prom-rules/1', got {d['format']!r}", "format")
        if "description" in d and not isinstance(d["description"], str):
            raise _bad("rules key 'description' must be text", "description")
        kw: dict[str, Any] = {}
        if "certainty" in d:
            kw["certainty"] = _num(d["certainty"], "certainty", lo=0.5, hi=0.999)
        if "mid_t" in d:
            default, banks = _per_bank(d["mid_t"], "mid_t", lo=0, lo_open=True, hi=50)
            kw["mid_default"] = DEFAULT_MID if default is None else default
            kw["mid_by_bank"] = MappingProxyType(banks)
        if "acceptable" in d:
            a = _obj(d["acceptable"], "acceptable", ("policy", "t", "offset_t"))
            policy = a.get("policy", "fixed")
            if policy not in ACCEPTABLE_POLICIES:
                raise _bad(f"acceptable.policy must be one of {list(ACCEPTABLE_POLICIES)}, got {policy!r}",
                           "acceptable.policy")
            kw["acceptable_policy"] = policy
            if "t" in a:
                default, banks = _per_bank(a["t"], "acceptable.t", lo=0, hi=100)
                kw["acceptable_default_t"] = default
                kw["acceptable_by_bank"] = MappingProxyType(banks)
            if "offset_t" in a:
                kw["acceptable_offset_t"] = _num(a["offset_t"], "acceptable.offset_t", lo=0, hi=50)
        enabled, certainty = dict(_DEFAULT_ENABLED), {}
        if "rules" in d:
            rules = _obj(d["rules"], "rules", RULES)
            for name, r in rules.items():
                keys = ("enabled", "certainty") + (("n",) if name == "abandoned_sittings" else ())
                r = _obj(r, f"rules.{name}", keys)
                if "enabled" in r:
                    if not isinstance(r["enabled"], bool):
                        raise _bad(f"rules.{name}.enabled must be true or false", f"rules.{name}.enabled")
                    enabled[name] = r["enabled"]
                elif name == "abandoned_sittings":
                    enabled[name] = True  # naming the optional rule switches it on
                if "certainty" in r:
                    certainty[name] = _num(r["certainty"], f"rules.{name}.certainty", lo=0.5, hi=0.999)
                if "n" in r:
                    kw["abandoned_n"] = _num(r["n"], f"rules.{name}.n", lo=1, hi=100, integer=True)
        kw["enabled"] = MappingProxyType(enabled)
        kw["rule_certainty"] = MappingProxyType(certainty)
        return cls(**kw)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RuleConfig":
        """Read a rules file strictly (:func:`cat_prom.jsonfile.read_json`)."""
        from ..jsonfile import read_json
        doc = read_json(path, error=InvalidRulesError, what="rules file", fields={"field": "rules"})
        try:
            return cls.from_dict(doc)
        except InvalidRulesError as e:
            raise e.with_source(os.path.basename(os.fspath(path)))

    def to_dict(self) -> dict:
        """The complete document (defaults filled in); :meth:`from_dict` of it gives an equal config."""
        rules = {}
        for name in RULES:
            r: dict[str, Any] = {"enabled": bool(self.enabled.get(name, False))}
            if name in self.rule_certainty:
                r["certainty"] = self.rule_certainty[name]
            if name == "abandoned_sittings":
                r["n"] = self.abandoned_n
            rules[name] = r
        acc_t = dict(self.acceptable_by_bank)
        if self.acceptable_default_t is not None:
            acc_t["default"] = self.acceptable_default_t
        return {"format": "cat-prom-rules/1", "certainty": self.certainty,
                "mid_t": {"default": self.mid_default, **dict(self.mid_by_bank)},
                "acceptable": {"policy": self.acceptable_policy, "t": acc_t, "offset_t": self.acceptable_offset_t},
                "rules": rules}

    # ------------------------------------------------------------------ lookups
    def mid(self, bank_id: str) -> float:
        """The minimally important difference of a bank, T points."""
        return float(self.mid_by_bank.get(bank_id, self.mid_default))

    def required(self, rule: str) -> float:
        """The certainty at which ``rule`` fires."""
        return float(self.rule_certainty.get(rule, self.certainty))

    def is_enabled(self, rule: str) -> bool:
        return bool(self.enabled.get(rule, False))

    def default_acceptable_t(self, bank_id: str) -> float | None:
        """The clinic-wide acceptable T of a bank (where a patient has agreed none), or None."""
        return self.acceptable_by_bank.get(bank_id, self.acceptable_default_t)


def severe_threshold(bank) -> float | None:
    """The T bound of a bank's ``severe`` band on the side of the other bands, or None without one.

    On a ``higher_is_worse`` bank the severe band is ``[min_t, ∞)`` and this is ``min_t``; on a
    ``higher_is_better`` bank it is ``(-∞, max_t)`` and this is ``max_t``.
    """
    for band in getattr(bank, "bands", ()):
        if band.label.strip().lower() == "severe":
            return band.min_t if bank.direction == "higher_is_worse" else band.max_t
    return None


@dataclass(frozen=True)
class DomainScore:
    """What the rules read of one domain of one sitting: plain values (see :meth:`from_session`).

    ``log_posterior`` is the session's log posterior on its grid nodes, ``nodes_t`` the nodes in
    T units (``t_mean + t_sd·θ``); both None for a result kept without its posterior (the rules then
    use the normal approximation).
    """

    bank_id: str
    domain: str
    direction: str
    status: str
    t_score: float | None
    t_se: float | None
    severe_t: float | None = None
    log_posterior: tuple | None = None
    nodes_t: tuple | None = None

    @property
    def scored(self) -> bool:
        return self.status == SCORED and self.t_score is not None and self.t_se is not None

    @classmethod
    def from_session(cls, session) -> "DomainScore":
        """From a :class:`~cat_prom.session.CatSession` (a live one, or one rebuilt by ``from_dict``)."""
        bank = session.bank
        status, _ = session.status
        scored = status == SCORED
        nodes_t = bank.t_mean + bank.t_sd * session.design.grid_theta()
        return cls(bank.id, bank.domain, bank.direction, status, session.t_score if scored else None,
                   session.t_se if scored else None, severe_threshold(bank),
                   tuple(session.log_posterior.tolist()) if scored else None,
                   tuple(nodes_t.tolist()) if scored else None)

    @classmethod
    def from_result(cls, result: Mapping, bank) -> "DomainScore":
        """From a stored result dict (no posterior: certainty by the normal approximation)."""
        status = result.get("status")
        if status is None:  # a result from before the status key: decide from its answers
            status = score_status(1, int(result.get("n_answered") or 0))[0]
        scored = status == SCORED and result.get("t_score") is not None
        return cls(bank.id, bank.domain, bank.direction, status, result["t_score"] if scored else None,
                   result.get("t_se") if scored else None, severe_threshold(bank))

    def prob_worse_than(self, threshold_t: float) -> tuple[float, str]:
        """(P(true T is on the worse side of ``threshold_t``), method): ``"posterior"`` or ``"normal"``."""
        if self.log_posterior is not None and self.nodes_t is not None:
            return prob_worse_than(np.asarray(self.log_posterior), np.asarray(self.nodes_t), threshold_t,
                                   self.direction, log=True), "posterior"
        return prob_beyond_normal(self.t_score, self.t_se, threshold_t, worse_side(self.direction)), "normal"


def _record(rule, score: DomainScore, certainty, required, method, threshold_t, values) -> dict:
    return {"rule": rule, "bank_id": score.bank_id, "domain": score.domain, "direction": score.direction,
            "fired": certainty >= required, "certainty": float(certainty), "certainty_required": required,
            "certainty_method": method, "threshold_t": threshold_t, "t_score": score.t_score,
            "t_se": score.t_se, "values": values}


def _change_rule(rule, current: DomainScore, ref: DomainScore, mid: float, required: float) -> dict:
    ch = change(ref.t_score, ref.t_se, current.t_score, current.t_se, direction=current.direction, mid=mid)
    w = worse_sign(current.direction) * ch.delta_t
    # P(true worsening >= MID) with W ~ N(w, SE_Δ²); SE_Δ = 0 (two exact scores): 1 or 0
    p = float(ndtr((w - mid) / ch.se_delta)) if ch.se_delta > 0 else float(w >= mid)
    return _record(rule, current, p, required, "normal_change", None,
                   {"mid_t": mid, "reference_t": ref.t_score, "reference_t_se": ref.t_se, **ch.to_dict()})


def evaluate_domain(current: DomainScore, *, config: RuleConfig | None = None, acceptable_t: float | None = None,
                    previous: DomainScore | None = None, baseline: DomainScore | None = None,
                    include_quiet: bool = False) -> list[dict]:
    """Evaluate the score rules on one domain of a finished sitting.

    Parameters
    ----------
    current : DomainScore
        The domain just scored. Not scored: no rule fires (an empty list).
    config : RuleConfig, optional
        Default :class:`RuleConfig` (certainty 0.8, MID 5, the four score rules on).
    acceptable_t : float, optional
        The patient's acceptable T for this bank (their goal, else the clinic default:
        :meth:`RuleConfig.default_acceptable_t`); ``above_acceptable`` is skipped without one.
    previous, baseline : DomainScore, optional
        The previous scored sitting and the baseline of the same domain (not-scored ones are ignored).
    include_quiet : bool
        Also return the records of rules that were evaluated but did not fire (``fired`` false).

    Returns
    -------
    list of dict, one per rule: ``rule``, ``bank_id``, ``domain``, ``direction``, ``fired``,
    ``certainty``, ``certainty_required``, ``certainty_method``, ``threshold_t``, ``t_score``,
    ``t_se`` and ``values`` (what the rule used: acceptable or severe T, MID, the change).
    """
    config = config or RuleConfig()
    if not current.scored:
        return []
    out = []
    if config.is_enabled("above_acceptable") and acceptable_t is not None:
        p, method = current.prob_worse_than(acceptable_t)
        out.append(_record("above_acceptable", current, p, config.required("above_acceptable"), method,
                           float(acceptable_t), {"acceptable_t": float(acceptable_t)}))
    if config.is_enabled("severe_band") and current.severe_t is not None:
        p, method = current.prob_worse_than(current.severe_t)
        out.append(_record("severe_band", current, p, config.required("severe_band"), method, current.severe_t,
                           {"severe_t": current.severe_t}))
    mid = config.mid(current.bank_id)
    for rule, ref in (("worse_than_previous", previous), ("worse_than_baseline", baseline)):
        if config.is_enabled(rule) and ref is not None and ref.scored:
            out.append(_change_rule(rule, current, ref, mid, config.required(rule)))
    return out if include_quiet else [r for r in out if r["fired"]]


def evaluate_abandoned(statuses: Sequence[str], *, config: RuleConfig | None = None) -> dict | None:
    """The ``abandoned_sittings`` record when the patient's last ``n`` sittings were all abandoned or expired.

    ``statuses`` are the patient's sitting statuses, oldest first (``finished``, ``abandoned``,
    ``expired``; sittings still in progress should be left out). Returns None when the rule is off
    or does not fire.
    """
    config = config or RuleConfig()
    if not config.is_enabled("abandoned_sittings"):
        return None
    run = 0
    for s in reversed(list(statuses)):
        if s not in INCOMPLETE:
            break
        run += 1
    if run < config.abandoned_n:
        return None
    return {"rule": "abandoned_sittings", "bank_id": None, "domain": None, "direction": None, "fired": True,
            "certainty": 1.0, "certainty_required": config.required("abandoned_sittings"),
            "certainty_method": "observed", "threshold_t": None, "t_score": None, "t_se": None,
            "values": {"consecutive_abandoned": run, "n": config.abandoned_n}}

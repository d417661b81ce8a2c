"""CAT designs: the frozen policy of a CAT, as a plain JSON document.

A design is the same JSON for the Python API, the CLI and the service. Every
key is optional; omitted keys take the PROMIS defaults (EAP scoring, maximum
Fisher information, start at the bank's start item, at least 4 and at most 12
items, stop once SE ≤ 0.3). Unknown keys are an error.

Keys (see ``docs/design.md`` for the full reference):

``estimator``
    ``"eap"`` (default), ``"map"``, ``"ml"`` or ``"wle"`` — the interim and final θ estimate.
``selection``
    ``"mfi"`` (default), ``"mpwi"``, ``"kl"``, ``"mepv"`` or ``"random"``.
``start``
    ``"auto"`` (default: the bank's start item if it names one, else ``"max_info"``),
    ``"bank"`` (the bank's start item; an error if it has none) or ``"max_info"``
    (the most informative item at the prior mean).
``min_items`` / ``max_items``
    4 / 12. ``max_items`` counts every question asked, declined ones included.
``se_target``
    0.3; stop once SE(θ) ≤ this (``null`` disables).
``se_change``
    ``null``; stop once SE changes by less than this between two answers.
``classification``
    ``null`` or ``{"threshold_t": 60, "confidence": 0.95}`` (or ``"threshold"`` on
    the θ metric): stop once the confidence interval for θ lies wholly on one side.
    ``"threshold_t": "goal"`` stands for the patient's acceptable T-score; such a design
    must be resolved for a patient (:func:`resolve_design`) before it runs.
``screen_stop``
    ``false``; stop after the first answer if it is the healthiest option.
``prior``
    ``{"mean": 0, "sd": 1}``, a normal (population) prior on θ; or ``{"type": "previous",
    "drift_sd_per_week": 0.05, "mixture_weight": 0.8}``: for a returning patient, a mixture of a normal
    around the last sitting's estimate and the population prior (:mod:`cat_prom.priors`; the
    previous sitting is passed to the session, the design only sets the policy). EAP only.
``grid``
    ``{"min": -6, "max": 6, "points": 81}``, the quadrature grid (also the ML/WLE search interval).
``exposure``
    ``{"method": "none"}``, ``{"method": "randomesque", "k": 5}`` or
    ``{"method": "sympson_hetter"}`` (uses each item's ``exposure_k`` from the bank).
``content_targets``
    ``null`` or ``{"tag": proportion, ...}`` (Kingsbury–Zara content balancing).
``exclude_items``
    ``[]``, item ids never to offer (e.g. items excluded for a given patient).
"""
from __future__ import annotations

import json
import math
from types import MappingProxyType
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from . import grid
from .errors import InvalidDesignError, UnresolvedGoalError

__all__ = ["Design", "ESTIMATORS", "SELECTIONS", "STARTS", "EXPOSURE_METHODS", "PROMIS_DEFAULT", "GOAL",
           "resolve_design", "PREVIOUS_PRIOR_DEFAULTS"]

ESTIMATORS = ("eap", "map", "ml", "wle")
SELECTIONS = ("mfi", "mpwi", "kl", "mepv", "random")
STARTS = ("auto", "bank", "max_info")
EXPOSURE_METHODS = ("none", "randomesque", "sympson_hetter")


#: the ``classification.threshold_t`` placeholder for the patient's acceptable T-score
GOAL = "goal"
_CACHE: dict = {}  # canonical JSON of a design document -> Design (designs are immutable)
_CACHE_SIZE = 512


def _bad(msg, key):
    return InvalidDesignError(msg, field=key)


def _number(d, key, *, lo=None, hi=None, integer=False, allow_none=False, lo_open=False, prefix=""):
    # prefix names the enclosing object ("prior."), so messages say 'prior.sd', not 'sd'
    v = d[key]
    key = prefix + str(key)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"design key {key!r} must be a {'whole ' if integer else ''}number"
                   f"{' or null' if allow_none else ''}, got {v!r}", key)
    if integer:
        if float(v) != int(v):
            raise _bad(f"design key {key!r} must be a whole number, got {v!r}", key)
        v = int(v)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise _bad(f"design key {key!r} must be {'>' if lo_open else '>='} {lo}, got {v!r}", key)
    if hi is not None and v > hi:
        raise _bad(f"design key {key!r} must be <= {hi}, got {v!r}", key)
    return v


#: Defaults of the previous-sitting prior (``{"type": "previous"}``), chosen by the longitudinal simulation
#: (``benchmarks/longitudinal.py``; ``docs/design.md``, "Previous-sitting prior").
PREVIOUS_PRIOR_DEFAULTS = {"drift_sd_per_week": 0.05, "mixture_weight": 0.8, "switch_at": 0.5, "confirm_below": 0.2,
                           "jump_sd": None, "change_confidence": None}


def _check_prior(p, estimator: str) -> dict:
    """The ``prior`` object: population ``{"mean", "sd"}`` (``"type": "normal"`` optional) or the
    previous-sitting mixture ``{"type": "previous", "mean", "sd", "drift_sd_per_week", "mixture_weight"}``
    (:mod:`cat_prom.priors`), optionally with ``switch_at``, ``confirm_below``, ``jump_sd`` and
    ``change_confidence`` (the last two are kept only when set, so that older documents read back unchanged)."""
    kind = p.get("type", "normal") if isinstance(p, dict) else None
    allowed = {"type", "mean", "sd"} | (set(PREVIOUS_PRIOR_DEFAULTS) if kind == "previous" else set())
    if not isinstance(p, dict) or kind not in ("normal", "previous") or set(p) - allowed:
        extra = sorted(set(p) - allowed) if isinstance(p, dict) else []
        raise _bad("design key 'prior' must be an object {\"mean\": m, \"sd\": s} (population prior) or "
                   "{\"type\": \"previous\", \"drift_sd_per_week\": d, \"mixture_weight\": w, \"mean\": m, "
                   "\"sd\": s} (previous-sitting prior)"
                   + (f"; got type {kind!r}" if kind not in ("normal", "previous") else "")
                   + (f"; unknown key prior.{extra[0]}" if extra else ""), "prior")
    out = {"mean": float(_number(p, "mean", lo=-10, hi=10, prefix="prior.")) if "mean" in p else 0.0,
           "sd": float(_number(p, "sd", lo=0.05, hi=10, prefix="prior.")) if "sd" in p else 1.0}
    if kind == "previous":
        if estimator != "eap":
            raise _bad(f"the previous-sitting prior needs the EAP estimator (a grid posterior); got estimator "
                       f"{estimator!r}", "prior")
        out["type"] = "previous"
        out["drift_sd_per_week"] = float(_number(p, "drift_sd_per_week", lo=0, hi=5, prefix="prior.")
                                         if "drift_sd_per_week" in p else PREVIOUS_PRIOR_DEFAULTS["drift_sd_per_week"])
        out["mixture_weight"] = float(_number(p, "mixture_weight", lo=0, hi=1, lo_open=True, prefix="prior.")
                                      if "mixture_weight" in p else PREVIOUS_PRIOR_DEFAULTS["mixture_weight"])
        out["switch_at"] = float(_number(p, "switch_at", lo=0, hi=1, lo_open=True, prefix="prior.")
                                 if "switch_at" in p else PREVIOUS_PRIOR_DEFAULTS["switch_at"])
        out["confirm_below"] = float(_number(p, "confirm_below", lo=0, hi=1, prefix="prior.")
                                     if "confirm_below" in p else PREVIOUS_PRIOR_DEFAULTS["confirm_below"])
        if p.get("change_confidence") is not None:  # absent, null or 0: no change call (as before)
            conf = float(_number(p, "change_confidence", lo=0, hi=0.999, prefix="prior."))
            if conf > 0:
                out["change_confidence"] = conf
        if p.get("jump_sd") is not None:  # absent or null: the population prior is the alternative (as before)
            out["jump_sd"] = float(_number(p, "jump_sd", lo=0, hi=5, lo_open=True, prefix="prior."))
        if out["confirm_below"] >= out["switch_at"]:
            raise _bad(f"prior.confirm_below ({out['confirm_below']}) must be below prior.switch_at "
                       f"({out['switch_at']})", "prior")
    return out


@dataclass(frozen=True)
class Design:
    """A validated CAT design. Build with :meth:`from_dict`; see the module docstring for keys."""

    estimator: str = "eap"
    selection: str = "mfi"
    start: str = "auto"
    min_items: int = 4
    max_items: int = 12
    se_target: float | None = 0.3
    se_change: float | None = None
    classification: Mapping | None = None
    screen_stop: bool = False
    prior: Mapping = field(default_factory=lambda: MappingProxyType({"mean": 0.0, "sd": 1.0}))
    grid: Mapping = field(default_factory=lambda: MappingProxyType({"min": -6.0, "max": 6.0, "points": 81}))
    exposure: Mapping = field(default_factory=lambda: MappingProxyType({"method": "none"}))
    content_targets: Mapping | None = None
    exclude_items: tuple = ()

    # ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None, **overrides) -> "Design":
        """Validate a design document; omitted keys take the PROMIS defaults."""
        if isinstance(d, Design) and not overrides:
            return d
        if isinstance(d, Design):
            d = d.to_dict()
        if d is not None and not isinstance(d, Mapping):
            raise _bad(f"a design must be a JSON object, got {type(d).__name__}", "design")
        d = dict(d or {})
        d.update(overrides)
        try:
            key = json.dumps(d, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            key = None
        if key is not None:
            hit = _CACHE.get(key)
            if hit is not None:
                return hit
        design = cls._validate(d)
        if key is not None:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = design
        return design

    @classmethod
    def _validate(cls, d: dict) -> "Design":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise _bad(f"unknown design key {unknown[0]!r}; allowed keys are {sorted(names)}", unknown[0])
        out = {}
        for key, allowed in (("estimator", ESTIMATORS), ("selection", SELECTIONS), ("start", STARTS)):
            if key in d:
                v = d[key]
                if not isinstance(v, str) or v.lower() not in allowed:
                    raise _bad(f"design key {key!r} must be one of {list(allowed)}, got {v!r}", key)
                out[key] = v.lower()
        if "min_items" in d:
            out["min_items"] = _number(d, "min_items", lo=0, hi=10000, integer=True)
        if "max_items" in d:
            out["max_items"] = _number(d, "max_items", lo=1, hi=10000, integer=True)
        if out.get("min_items", 4) > out.get("max_items", 12):
            raise _bad(f"min_items ({out.get('min_items', 4)}) must not exceed max_items ({out.get('max_items', 12)})",
                       "min_items")
        if "se_target" in d:
            out["se_target"] = _number(d, "se_target", lo=0, lo_open=True, allow_none=True)
        if "se_change" in d:
            out["se_change"] = _number(d, "se_change", lo=0, lo_open=True, allow_none=True)
        if "screen_stop" in d:
            if not isinstance(d["screen_stop"], bool):
                raise _bad(f"design key 'screen_stop' must be true or false, got {d['screen_stop']!r}", "screen_stop")
            out["screen_stop"] = d["screen_stop"]
        if "classification" in d and d["classification"] is not None:
            c = d["classification"]
            if not isinstance(c, dict):
                raise _bad("design key 'classification' must be an object like {\"threshold_t\": 60, \"confidence\": 0.95}",
                           "classification")
            bad = set(c) - {"threshold", "threshold_t", "confidence"}
            if bad:
                raise _bad(f"unknown key classification.{sorted(bad)[0]}; allowed: threshold, threshold_t, confidence",
                           "classification")
            if ("threshold" in c) == ("threshold_t" in c):
                raise _bad("classification needs exactly one of 'threshold' (θ metric) or 'threshold_t' (T-score metric)",
                           "classification")
            key = "threshold" if "threshold" in c else "threshold_t"
            if c[key] == GOAL:
                if key != "threshold_t":
                    raise _bad("the patient's goal is a T-score: write \"threshold_t\": \"goal\"", "classification")
                cc = {key: GOAL}
            else:
                cc = {key: _number(c, key, prefix="classification.")}
            cc["confidence"] = _number(c, "confidence", lo=0.5, hi=0.9999, prefix="classification.") if "confidence" in c else 0.95
            out["classification"] = cc
        if "prior" in d:
            out["prior"] = _check_prior(d["prior"], out.get("estimator", "eap"))
        if "grid" in d:
            g = d["grid"]
            if not isinstance(g, dict) or set(g) - {"min", "max", "points"}:
                raise _bad("design key 'grid' must be an object {\"min\": -6, \"max\": 6, \"points\": 81}", "grid")
            gg = {"min": float(_number(g, "min", lo=-20, hi=20, prefix="grid.")) if "min" in g else -6.0,
                  "max": float(_number(g, "max", lo=-20, hi=20, prefix="grid.")) if "max" in g else 6.0,
                  "points": _number(g, "points", lo=5, hi=2001, integer=True, prefix="grid.") if "points" in g else 81}
            if gg["max"] <= gg["min"]:
                raise _bad(f"grid.max ({gg['max']}) must exceed grid.min ({gg['min']})", "grid")
            out["grid"] = gg
        if "exposure" in d:
            e = d["exposure"]
            if not isinstance(e, dict) or set(e) - {"method", "k"}:
                raise _bad("design key 'exposure' must be an object {\"method\": ..., \"k\": ...}", "exposure")
            m = e.get("method", "none")
            if m not in EXPOSURE_METHODS:
                raise _bad(f"exposure.method must be one of {list(EXPOSURE_METHODS)}, got {m!r}", "exposure")
            ee = {"method": m}
            if m == "randomesque":
                ee["k"] = _number(e, "k", lo=1, hi=1000, integer=True, prefix="exposure.") if "k" in e else 5
            elif "k" in e:
                raise _bad("exposure.k applies only to the randomesque method", "exposure")
            out["exposure"] = ee
        if "content_targets" in d and d["content_targets"] is not None:
            ct = d["content_targets"]
            if not isinstance(ct, dict) or not ct:
                raise _bad("design key 'content_targets' must be a non-empty object {\"tag\": proportion}", "content_targets")
            cc = {}
            for tag, prop in ct.items():
                cc[str(tag)] = float(_number(ct, tag, lo=0, hi=1, prefix="content_targets."))
            if abs(sum(cc.values()) - 1.0) > 1e-6:
                raise _bad(f"content_targets proportions must sum to 1, got {sum(cc.values()):.4g}", "content_targets")
            out["content_targets"] = cc
        if "exclude_items" in d:
            ex = d["exclude_items"]
            if not isinstance(ex, (list, tuple)) or any(not isinstance(x, str) for x in ex):
                raise _bad("design key 'exclude_items' must be a list of item ids", "exclude_items")
            out["exclude_items"] = tuple(ex)
        # designs are shared (from_dict caches them), so their nested objects are read-only views
        for key in ("prior", "grid", "exposure", "classification", "content_targets"):
            if out.get(key) is not None:
                out[key] = MappingProxyType(dict(out[key]))
        return cls(**out)

    def to_dict(self) -> dict:
        """The complete design document (every key, defaults filled in)."""
        return {
            "estimator": self.estimator, "selection": self.selection, "start": self.start,
            "min_items": self.min_items, "max_items": self.max_items, "se_target": self.se_target,
            "se_change": self.se_change,
            "classification": dict(self.classification) if self.classification else None,
            "screen_stop": self.screen_stop, "prior": dict(self.prior), "grid": dict(self.grid),
            "exposure": dict(self.exposure),
            "content_targets": dict(self.content_targets) if self.content_targets else None,
            "exclude_items": list(self.exclude_items),
        }

    def merged(self, overrides: Mapping[str, Any] | None) -> "Design":
        """A new design with some keys replaced (validated again)."""
        if not overrides:
            return self
        d = self.to_dict()
        d.update(overrides)
        return Design.from_dict(d)

    @property
    def needs_goal(self) -> bool:
        """Whether the classification threshold is the patient's goal, still to be resolved (:func:`resolve_design`)."""
        return self.classification is not None and self.classification.get("threshold_t") == GOAL

    def grid_theta(self) -> np.ndarray:
        """The quadrature nodes, shape (points,): :func:`cat_prom.grid.nodes` (read-only, shared)."""
        theta = self.__dict__.get("_grid_theta")
        if theta is None:
            theta = grid.nodes(self.grid["min"], self.grid["max"], self.grid["points"])
            object.__setattr__(self, "_grid_theta", theta)
        return theta

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """Unnormalised log density of the normal prior at ``theta`` (:func:`cat_prom.grid.normal_log_density`)."""
        return grid.normal_log_density(theta, self.prior["mean"], self.prior["sd"])


PROMIS_DEFAULT = Design()


def resolve_design(design: Design | Mapping | None, acceptable_t: float | None) -> Design:
    """The design with a ``"threshold_t": "goal"`` classification stop set to the patient's acceptable T.

    Parameters
    ----------
    design : Design, dict or None
    acceptable_t : float or None
        The patient's acceptable T-score on the bank the design runs on (their agreed goal, or
        the clinic's default).

    Returns
    -------
    Design
        A concrete design (the same one when it does not use the goal).

    Raises
    ------
    UnresolvedGoalError
        The design needs the goal and ``acceptable_t`` is None.
    InvalidDesignError
        ``acceptable_t`` is not a finite number.
    """
    design = design if isinstance(design, Design) else Design.from_dict(design)
    if not design.needs_goal:
        return design
    if acceptable_t is None:
        raise UnresolvedGoalError("the design stops on the patient's goal (classification threshold_t \"goal\"), "
                                  "but this patient has no acceptable T-score for the bank; set one (or a "
                                  "clinic default) or use a design with a number", field="classification.threshold_t")
    if isinstance(acceptable_t, bool) or not isinstance(acceptable_t, (int, float)) or not math.isfinite(acceptable_t):
        raise InvalidDesignError(f"an acceptable T-score must be a finite number, got {acceptable_t!r}",
                                 field="classification.threshold_t")
    c = dict(design.classification)
    c["threshold_t"] = float(acceptable_t)
    return design.merged({"classification": c})

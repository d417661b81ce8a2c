"""Stop rules over batches of CATs. Each decision says which rule fired and why (as catR's stop rules do).

Rules are checked in this order after every answer or decline; the first that fires is
the CAT's ``stop_reason``. Rules that respect ``min_items`` also wait for at least one
answer (``min_items`` 0 counts as 1): before it the estimate is the prior's, no evidence.

========================  =====================================================  ==================
reason                    fires when                                             respects min_items
========================  =====================================================  ==================
``screen_negative``       ``screen_stop`` and the first answer is the healthiest  no
                          option (no pain, no side effect, full function)
``max_items``             ``max_items`` questions have been asked                 no
``se_target``             SE(θ) ≤ ``se_target``                                   yes
``se_change``             SE changed by less than ``se_change`` on the last answer yes
``classification``        the ``confidence`` interval for θ lies wholly above or   yes
                          below the threshold (``"goal"``: resolved per patient,
                          :func:`cat_prom.design.resolve_design`)
``bank_exhausted``        no eligible item is left                                no
========================  =====================================================  ==================

Each rule is defined once, in :data:`RULES`: when it applies to a design, the condition
under which it fires, and the words that say why. :class:`StopRules` evaluates them for
``S`` CATs at once — a CAT session is ``S = 1`` — and returns one integer code per row
(:data:`CONTINUE`, or 1 + the index of the reason in :data:`REASONS`); :meth:`StopRules.decision`
turns one row's code into a :class:`StopDecision` with its reason and detail.

The conditions are written with operators that work alike on numpy arrays (a batch) and on
Python numbers (one row), so the one-row case runs the same definitions without numpy's
per-call overhead.

References
----------
Magis, D., & Barrada, J. R. (2017). Computerized adaptive testing with R: recent updates of
the package catR. *Journal of Statistical Software*, 76(1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from scipy.special import ndtri

from .errors import UnresolvedGoalError

__all__ = ["StopDecision", "StopRules", "check", "REASONS", "RULES", "CONTINUE", "code_of"]

REASONS = ("screen_negative", "max_items", "se_target", "se_change", "classification", "bank_exhausted")
#: Code of a row that goes on; a stopped row's code is 1 + the index of its reason in REASONS.
CONTINUE = 0


def code_of(reason: str) -> int:
    """The integer code of a stop reason (1 + its index in :data:`REASONS`)."""
    return REASONS.index(reason) + 1


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str | None = None
    detail: str = ""


_CONTINUE = StopDecision(False)


class Row(NamedTuple):
    """The state the rules read, for S rows (arrays of shape (S,)) or for one row (numbers).

    ``n_asked`` and ``n_answered`` are numbers shared by every row (the rows of a batch move
    in step). ``se_prev`` is NaN where there is no previous SE (before the second answer, after
    a decline); ``first_healthy`` says whether the first answer was the healthiest option.
    """

    n_asked: int
    n_answered: int
    theta: float | np.ndarray
    se: float | np.ndarray
    se_prev: float | np.ndarray
    first_healthy: bool | np.ndarray
    n_eligible: int | np.ndarray


class Rule(NamedTuple):
    reason: str
    #: fires only once ``min_items`` answers have been given
    gated: bool
    #: whether the design uses the rule
    applies: Callable[["StopRules"], bool]
    #: (rules, row) -> bool, or a bool array for a batch
    fires: Callable[["StopRules", Row], object]
    #: (rules, row of numbers) -> the reason in words
    detail: Callable[["StopRules", Row], str]


def _above(r: "StopRules", x: Row):
    return x.theta - r.z * x.se > r.threshold


def _below(r: "StopRules", x: Row):
    return x.theta + r.z * x.se < r.threshold


RULES = (
    Rule("screen_negative", False, lambda r: r.design.screen_stop,
         lambda r, x: x.first_healthy if x.n_asked == 1 else False,
         lambda r, x: "the first answer was the healthiest option"),
    Rule("max_items", False, lambda r: True,
         lambda r, x: x.n_asked >= r.design.max_items,
         lambda r, x: f"reached the maximum of {r.design.max_items} questions"),
    Rule("se_target", True, lambda r: r.design.se_target is not None,
         lambda r, x: x.se <= r.design.se_target,
         lambda r, x: f"SE {x.se:.3f} <= target {r.design.se_target:g} after {x.n_answered} answers"),
    # a NaN se_prev (no previous SE) compares False
    Rule("se_change", True, lambda r: r.design.se_change is not None,
         lambda r, x: abs(x.se_prev - x.se) < r.design.se_change,
         lambda r, x: f"SE changed by {abs(x.se_prev - x.se):.4f} < {r.design.se_change:g} on the last answer"),
    Rule("classification", True, lambda r: r.design.classification is not None,
         lambda r, x: _above(r, x) | _below(r, x),
         lambda r, x: (f"{r.design.classification['confidence']:.0%} interval for θ lies "
                       f"{'above' if _above(r, x) else 'below'} the threshold")),
    Rule("bank_exhausted", False, lambda r: True,
         lambda r, x: x.n_eligible == 0,
         lambda r, x: "no eligible item left in the bank" if x.n_asked else "no eligible item in the bank"),
)
_Z_CACHE: dict = {}


def interval_z(confidence: float) -> float:
    """z of the two-sided ``confidence`` interval, Φ⁻¹(½ + confidence/2) (cached: stop rules ask on every answer)."""
    z = _Z_CACHE.get(confidence)
    if z is None:
        z = _Z_CACHE[confidence] = float(ndtri(0.5 + confidence / 2.0))
    return z


class StopRules:
    """The stop rules of a design on one bank's metric, evaluated for S CATs at once.

    Parameters
    ----------
    design : Design
    t_mean, t_sd : float
        The bank's T-score metric (a ``threshold_t`` is converted to θ with them).
    """

    def __init__(self, design, t_mean: float = 50.0, t_sd: float = 10.0):
        self.design = design
        # a precision or classification rule never fires before the first answer: with no answer the
        # "estimate" is the prior, which is no evidence about the patient (cat_prom.evidence)
        self.min_items = max(design.min_items, 1)
        c = design.classification
        self.threshold = self.z = None
        if c is not None:
            if c.get("threshold_t") == "goal":
                raise UnresolvedGoalError("the design's classification threshold is the patient's goal "
                                          "(threshold_t \"goal\"); resolve it with "
                                          "cat_prom.design.resolve_design(design, acceptable_t) before running it",
                                          field="classification.threshold_t")
            self.threshold = c["threshold"] if "threshold" in c else (c["threshold_t"] - t_mean) / t_sd
            self.z = interval_z(c["confidence"])
        #: (code, rule) of the rules the design uses, in order
        self.active = tuple((i + 1, rule) for i, rule in enumerate(RULES) if rule.applies(self))
        self._reversed = self.active[::-1]

    def first(self, x: Row) -> int:
        """The code of the first rule that fires for one row of numbers (:data:`CONTINUE` if none)."""
        gate = x.n_answered >= self.min_items
        for code, rule in self.active:
            if (gate or not rule.gated) and rule.fires(self, x):
                return code
        return CONTINUE

    def codes(self, x: Row) -> np.ndarray:
        """Stop codes of S rows, shape (S,) int8: :data:`CONTINUE` or the code of the first rule that fires.

        ``x`` holds arrays of shape (S,). A single row is evaluated on Python numbers by
        :meth:`first` (the same rules; a numpy call would cost more than the rule itself).
        """
        S = x.se.shape[0]
        if S == 1:
            one = Row(x.n_asked, x.n_answered, float(x.theta[0]), float(x.se[0]), float(x.se_prev[0]),
                      bool(x.first_healthy[0]), int(x.n_eligible[0]))
            return np.array([self.first(one)], dtype=np.int8)
        out = np.zeros(S, dtype=np.int8)
        gate = x.n_answered >= self.min_items
        # the last rule first, so that an earlier rule that also fires overwrites it
        for code, rule in self._reversed:
            if rule.gated and not gate:
                continue
            hit = rule.fires(self, x)
            if isinstance(hit, (bool, np.bool_)):
                if hit:
                    out[:] = code
            else:
                out[hit] = code
        return out

    def decision(self, code: int, x: Row) -> StopDecision:
        """The decision for one row of numbers with the given code, with the rule's words."""
        if code == CONTINUE:
            return _CONTINUE
        rule = RULES[code - 1]
        return StopDecision(True, rule.reason, rule.detail(self, x))


def check(design, *, n_asked: int, n_answered: int, theta: float, se: float, se_prev: float | None,
          first_healthy: bool, n_eligible: int, t_mean: float = 50.0, t_sd: float = 10.0) -> StopDecision:
    """Evaluate the design's stop rules for one CAT after an answer (see :class:`StopRules`)."""
    rules = StopRules(design, t_mean, t_sd)
    x = Row(int(n_asked), int(n_answered), float(theta), float(se), math.nan if se_prev is None else float(se_prev),
            bool(first_healthy), int(n_eligible))
    return rules.decision(rules.first(x), x)

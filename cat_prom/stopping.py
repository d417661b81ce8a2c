"""Stop rules. Each reports whether it fired and why (as catR's stop rules do).

Rules are checked in this order after every answer; the first that fires is
the session's ``stop_reason``:

========================  =====================================================  ==================
reason                    fires when                                             respects min_items
========================  =====================================================  ==================
``screen_negative``       ``screen_stop`` and the first answer is the healthiest  no
                          option (no pain, no side effect, full function)
``max_items``             ``max_items`` questions have been asked                 no
``se_target``             SE(θ) ≤ ``se_target``                                   yes
``se_change``             SE changed by less than ``se_change`` on the last answer yes
``classification``        the ``confidence`` interval for θ lies wholly above or   yes
                          below the threshold
``bank_exhausted``        no eligible item is left                                no
========================  =====================================================  ==================
"""
from __future__ import annotations

from dataclasses import dataclass

from scipy.special import ndtri

__all__ = ["StopDecision", "check", "REASONS"]

REASONS = ("screen_negative", "max_items", "se_target", "se_change", "classification", "bank_exhausted")


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str | None = None
    detail: str = ""


_CONTINUE = StopDecision(False)
_Z_CACHE: dict = {}


def _z(conf: float) -> float:
    z = _Z_CACHE.get(conf)
    if z is None:
        z = _Z_CACHE[conf] = float(ndtri(0.5 + conf / 2.0))
    return z


def check(design, *, n_asked: int, n_answered: int, theta: float, se: float, se_prev: float | None,
          first_healthy: bool, n_eligible: int, t_mean: float = 50.0, t_sd: float = 10.0) -> StopDecision:
    """Evaluate the design's stop rules on the state after an answer."""
    if design.screen_stop and n_asked == 1 and first_healthy:
        return StopDecision(True, "screen_negative", "the first answer was the healthiest option")
    if n_asked >= design.max_items:
        return StopDecision(True, "max_items", f"reached the maximum of {design.max_items} questions")
    if n_answered >= design.min_items:
        if design.se_target is not None and se <= design.se_target:
            return StopDecision(True, "se_target", f"SE {se:.3f} <= target {design.se_target:g} after {n_answered} answers")
        if design.se_change is not None and se_prev is not None and abs(se_prev - se) < design.se_change:
            return StopDecision(True, "se_change",
                                f"SE changed by {abs(se_prev - se):.4f} < {design.se_change:g} on the last answer")
        c = design.classification
        if c is not None:
            thr = c["threshold"] if "threshold" in c else (c["threshold_t"] - t_mean) / t_sd
            z = _z(c["confidence"])
            if theta - z * se > thr:
                return StopDecision(True, "classification",
                                    f"{c['confidence']:.0%} interval for θ lies above the threshold")
            if theta + z * se < thr:
                return StopDecision(True, "classification",
                                    f"{c['confidence']:.0%} interval for θ lies below the threshold")
    if n_eligible == 0:
        return StopDecision(True, "bank_exhausted", "no eligible item left in the bank")
    return _CONTINUE

"""Whether a domain has a score: a score is never reported without evidence behind it.

A domain in which the patient answered nothing — every question declined, every item
excluded, or stopped before an answer — is **not scored**: no θ, SE, T-score, band or
flag, only a status and the reason. The CAT session, the battery, the simulator and the
``score`` command all ask this module, so that "not scored" means the same everywhere.

=====================  ==================================================================
``status_reason``      when
=====================  ==================================================================
``no_eligible_items``  the domain finished before any question was asked (every item
                       excluded or otherwise ineligible)
``all_declined``       questions were asked, and the patient declined every one
``no_answers``         not finished yet, and nothing answered so far
=====================  ==================================================================
"""
from __future__ import annotations

__all__ = ["SCORED", "NOT_SCORED", "NO_ANSWERS", "ALL_DECLINED", "NO_ELIGIBLE_ITEMS", "REASONS",
           "score_status", "is_scored"]

SCORED = "scored"
NOT_SCORED = "not_scored"
NO_ANSWERS = "no_answers"
ALL_DECLINED = "all_declined"
NO_ELIGIBLE_ITEMS = "no_eligible_items"
#: every ``status_reason`` of a not-scored domain
REASONS = (NO_ANSWERS, ALL_DECLINED, NO_ELIGIBLE_ITEMS)


def score_status(n_asked: int, n_answered: int, finished: bool = True) -> tuple[str, str | None]:
    """``(status, status_reason)`` of a domain: ``("scored", None)`` once at least one answer was given."""
    if n_answered > 0:
        return SCORED, None
    if n_asked > 0:
        return NOT_SCORED, ALL_DECLINED
    return NOT_SCORED, NO_ELIGIBLE_ITEMS if finished else NO_ANSWERS


def is_scored(result) -> bool:
    """Whether a domain result (a dict of :meth:`cat_prom.session.CatSession.result`) carries a score.

    A result written before results had a ``status`` counts as scored only if it has a T-score
    and at least one answer (such results gave T 50 for a domain with no answers)."""
    if result.get("t_score") is None:
        return False
    status = result.get("status")
    if status is None:
        return int(result.get("n_answered") or 0) > 0
    return status == SCORED

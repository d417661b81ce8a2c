"""Deduplicating alerts: open a new one, update the one already there, or re-open an acknowledged one.

For one (patient, domain, rule) there is at most one live alert. When a rule fires again:

==================================  ==========================================================
existing alert                      decision
==================================  ==========================================================
none, or ``closed``                 ``open``: a new alert
``open``                            ``update``: the same alert, with the new values
``acknowledged``, not worse         ``update``: stays acknowledged (the clinician knows)
``acknowledged``, worse by >= MID   ``reopen``: worse again by at least the MID than when it
                                    was acknowledged
==================================  ==========================================================

"Worse" is the T-score's change since the acknowledged record, oriented by the bank's
direction (:func:`cat_prom.clinical.change.worsening`); for ``abandoned_sittings`` it is
another ``n`` abandoned sittings since acknowledgement. The records are the dicts of
:func:`cat_prom.clinical.rules.evaluate_domain` / :func:`~cat_prom.clinical.rules.evaluate_abandoned`.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

from ..errors import InvalidDataError
from .change import DEFAULT_MID, worsening

__all__ = ["ALERT_STATUSES", "Decision", "decide"]

ALERT_STATUSES = ("open", "acknowledged", "closed")


class Decision(NamedTuple):
    #: "open", "update" or "reopen"
    action: str
    #: why, in words
    reason: str
    #: for an acknowledged alert: the worsening since acknowledgement (T points, or sittings), else None
    worsened_by: float | None = None


def decide(existing: Mapping | None, new: Mapping, *, mid: float = DEFAULT_MID) -> Decision:
    """What to do with a new firing ``new`` given the live alert ``existing`` for the same patient, domain and rule.

    Parameters
    ----------
    existing : mapping or None
        ``{"status": "open" | "acknowledged" | "closed", "acknowledged_record": <the rule record
        stored when it was acknowledged>}`` (``acknowledged_record`` only for ``acknowledged``).
    new : mapping
        The new record (``fired`` true), from the rules.
    mid : float
        The domain's minimally important difference, T points (:meth:`RuleConfig.mid`).

    Returns
    -------
    Decision
    """
    if not new.get("fired", True):
        raise InvalidDataError("decide() takes a record whose rule fired", field="fired")
    if existing is None:
        return Decision("open", "no alert for this patient, domain and rule")
    status = existing.get("status")
    if status not in ALERT_STATUSES:
        raise InvalidDataError(f"an alert's status is one of {list(ALERT_STATUSES)}, got {status!r}", field="status")
    if status == "closed":
        return Decision("open", "the previous alert was closed")
    if status == "open":
        return Decision("update", "an open alert exists: updated with the new values")
    ack = existing.get("acknowledged_record")
    if not isinstance(ack, Mapping):
        raise InvalidDataError("an acknowledged alert needs the record it was acknowledged with "
                               "('acknowledged_record')", field="acknowledged_record")
    if new.get("rule") == "abandoned_sittings":
        n = int(new["values"]["n"])
        more = int(new["values"]["consecutive_abandoned"]) - int(ack["values"]["consecutive_abandoned"])
        if more >= n:
            return Decision("reopen", f"{more} more abandoned sittings since it was acknowledged", float(more))
        return Decision("update", "acknowledged; not another run of abandoned sittings since", float(more))
    w = worsening(float(new["t_score"]) - float(ack["t_score"]), new["direction"])
    if w >= mid:
        return Decision("reopen", f"worse by {w:.1f} T since acknowledged (MID {mid:g})", w)
    return Decision("update", f"acknowledged; worse by {w:.1f} T since, less than the MID {mid:g}", w)

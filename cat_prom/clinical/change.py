r"""Change between two scored sittings: ΔT, its standard error, reliable change, MID, clinical direction.

For two T-scores :math:`T_1` (earlier) and :math:`T_2` (later) with standard errors
:math:`SE_1, SE_2` (T units, ``t_se`` of a result), the change and its standard error are

.. math::

    \Delta T = T_2 - T_1, \qquad SE_\Delta = \sqrt{SE_1^2 + SE_2^2}

(the two measurements' errors are independent). The change is **reliable** when
:math:`|\Delta T| > 1.96\,SE_\Delta` — Jacobson & Truax's (1991) reliable change index
:math:`RC = \Delta T / SE_\Delta` beyond ±1.96, i.e. unlikely (p < .05, two-sided) to be
measurement error alone; with CAT each score has its own SE, so :math:`SE_\Delta` uses both
instead of one SE from a reliability coefficient. It **reaches the MID** when
:math:`|\Delta T| \ge` the domain's minimally important difference (default 5 T points).

The **clinical direction** honours the bank's ``direction``: on a ``higher_is_worse`` bank
(pain, fatigue) a rise is ``"worse"``; on a ``higher_is_better`` bank (physical function) a
rise is ``"better"``. :func:`worsening` gives the change oriented so that positive is worse.

References
----------
Jacobson, N. S., & Truax, P. (1991). Clinical significance: a statistical approach to defining
meaningful change in psychotherapy research. *Journal of Consulting and Clinical Psychology*,
59(1), 12–19.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from ..errors import InvalidDataError
from ..evidence import SCORED

__all__ = ["RELIABLE_Z", "DEFAULT_MID", "Change", "change", "is_reliable", "worsening", "worse_sign", "changes"]

#: z of the reliable change criterion (two-sided 95%; Jacobson & Truax, 1991)
RELIABLE_Z = 1.96
#: default minimally important difference, T points
DEFAULT_MID = 5.0
DIRECTIONS = ("higher_is_worse", "higher_is_better")


def worse_sign(direction: str) -> int:
    """+1 on a ``higher_is_worse`` bank, −1 on a ``higher_is_better`` one: the sign that makes "worse" positive."""
    if direction == "higher_is_worse":
        return 1
    if direction == "higher_is_better":
        return -1
    raise InvalidDataError(f"a bank's direction is 'higher_is_worse' or 'higher_is_better', got {direction!r}",
                           field="direction")


def worsening(delta_t: float, direction: str) -> float:
    """The change oriented so that positive means clinically worse."""
    return worse_sign(direction) * delta_t


def _number(v, name, *, positive=False, nonnegative=False):
    if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0)
            or (nonnegative and v < 0)):
        cond = " > 0" if positive else " >= 0" if nonnegative else ""
        raise InvalidDataError(f"{name} must be a finite number{cond}, got {v!r}", field=name)
    return float(v)


@dataclass(frozen=True)
class Change:
    """The change from one scored sitting (``from``) to a later one (``to``), in T points.

    ``delta_t`` = T_to − T_from; ``se_delta`` = √(SE_from² + SE_to²); ``rci`` = delta_t / se_delta;
    ``reliable``: |delta_t| > 1.96·se_delta; ``reaches_mid``: |delta_t| ≥ ``mid``;
    ``direction``: ``"worse"``, ``"better"`` or ``"none"`` (ΔT = 0), honouring the bank's direction.
    """

    delta_t: float
    se_delta: float
    rci: float | None
    reliable: bool
    reaches_mid: bool
    direction: str
    mid: float
    t_from: float
    t_to: float

    def to_dict(self) -> dict:
        return asdict(self)


def is_reliable(delta_t, se_from, se_to, z: float = RELIABLE_Z):
    """The reliable-change rule |ΔT| > z·√(SE_from² + SE_to²), elementwise on numbers or numpy arrays
    (the one place it is written: :func:`change` and the longitudinal simulation use it)."""
    return abs(delta_t) > z * (se_from ** 2 + se_to ** 2) ** 0.5


def change(t_from: float, se_from: float, t_to: float, se_to: float, *, direction: str = "higher_is_worse",
           mid: float = DEFAULT_MID, z: float = RELIABLE_Z) -> Change:
    """The :class:`Change` from a sitting scored ``t_from`` ± ``se_from`` to one scored ``t_to`` ± ``se_to``.

    All in T units; ``direction`` is the bank's, ``mid`` the domain's MID, ``z`` the reliable-change z.
    """
    t1, t2 = _number(t_from, "t_from"), _number(t_to, "t_to")
    s1, s2 = _number(se_from, "se_from", nonnegative=True), _number(se_to, "se_to", nonnegative=True)
    mid = _number(mid, "mid", positive=True)
    z = _number(z, "z", positive=True)
    sign = worse_sign(direction)
    d = t2 - t1
    se = math.hypot(s1, s2)
    w = sign * d
    rci = d / se if se > 0 else None  # two exact scores (SE 0): no index
    return Change(delta_t=d, se_delta=se, rci=rci, reliable=bool(is_reliable(d, s1, s2, z)), reaches_mid=abs(d) >= mid,
                  direction="worse" if w > 0 else "better" if w < 0 else "none", mid=mid, t_from=t1, t_to=t2)


def _scored(r: Mapping) -> bool:
    return r.get("status", SCORED) == SCORED and r.get("t_score") is not None and r.get("t_se") is not None


def changes(current: Mapping, history: Sequence[Mapping], *, baseline: Mapping | None = None,
            direction: str | None = None, mid: float = DEFAULT_MID) -> dict:
    """The change of a domain's current result against the previous scored sitting and the baseline.

    Parameters
    ----------
    current : mapping
        The domain's result of the sitting just finished (keys ``t_score``, ``t_se``, ``status``,
        ``direction``; a :meth:`cat_prom.session.CatSession.result`).
    history : sequence of mappings
        The same domain's earlier results, oldest first. Not-scored results are skipped.
    baseline : mapping, optional
        A baseline the clinician marked; default the first scored result of ``history``.
    direction : str, optional
        The bank's direction (default: ``current["direction"]``).
    mid : float
        The domain's minimally important difference in T points.

    Returns
    -------
    dict with ``previous`` and ``baseline``: each a :class:`Change` as a dict, or None when there is
    nothing to compare with (no earlier scored sitting) or the current result is not scored.
    """
    out = {"previous": None, "baseline": None}
    if not _scored(current):
        return out
    direction = direction or current.get("direction", "higher_is_worse")
    earlier = [r for r in history if _scored(r)]
    if baseline is not None and not _scored(baseline):
        baseline = None
    if baseline is None and earlier:
        baseline = earlier[0]

    def one(ref):
        return change(ref["t_score"], ref["t_se"], current["t_score"], current["t_se"], direction=direction,
                      mid=mid).to_dict()

    if earlier:
        out["previous"] = one(earlier[-1])
    if baseline is not None:
        out["baseline"] = one(baseline)
    return out

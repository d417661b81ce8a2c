r"""Goal Attainment Scaling (GAS): one T-score from several personal goals.

Each goal is rated on five levels, −2 (much less than expected), −1 (somewhat less), 0 (the
expected level agreed with the patient), +1 (somewhat more) and +2 (much more than expected),
and may carry a weight :math:`w_i > 0` (e.g. importance × difficulty). The overall score is
Kiresuk & Sherman's (1968) T-score

.. math::

    T = 50 + \frac{10 \sum_i w_i x_i}{\sqrt{(1-\rho)\sum_i w_i^2 + \rho\,(\sum_i w_i)^2}}

where :math:`x_i` is the level reached on goal *i* and :math:`\rho` the assumed correlation
between goal scales, 0.3 by convention (Kiresuk & Sherman, 1968; Turner-Stokes, 2009, with the
formula as corrected in the 2009 erratum). All goals met exactly gives T = 50; the score has a
standard deviation of about 10 when the goals are set so that over- and under-achievement are
equally likely.

References
----------
Kiresuk, T. J., & Sherman, R. E. (1968). Goal attainment scaling: a general method for evaluating
comprehensive community mental health programs. *Community Mental Health Journal*, 4(6), 443–453.

Turner-Stokes, L. (2009). Goal attainment scaling (GAS) in rehabilitation: a practical guide.
*Clinical Rehabilitation*, 23(4), 362–370 (erratum: the formulas on pp. 364 and 367).
"""
from __future__ import annotations

import math
from typing import Sequence

from ..errors import InvalidGoalError

__all__ = ["GAS_LEVELS", "DEFAULT_RHO", "gas_t_score", "check_level"]

#: the five GAS levels
GAS_LEVELS = (-2, -1, 0, 1, 2)
#: the conventional inter-goal correlation ρ of the GAS formula
DEFAULT_RHO = 0.3


def check_level(x) -> int:
    """A GAS level as an int in −2..+2; anything else (2.5, True, "1") raises :class:`InvalidGoalError`."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or int(x) != x or int(x) not in GAS_LEVELS:
        raise InvalidGoalError(f"a Goal Attainment Scaling level is a whole number from -2 to +2, got {x!r}",
                               field="level")
    return int(x)


def gas_t_score(levels: Sequence[int], weights: Sequence[float] | None = None, *, rho: float = DEFAULT_RHO) -> float:
    r"""The GAS T-score of one rating of a patient's goals (see the module docstring for the formula).

    Parameters
    ----------
    levels : sequence of int, length n >= 1
        The level reached on each goal, each in −2..+2.
    weights : sequence of float, length n, optional
        Positive, finite weights (default: 1 for every goal).
    rho : float in [0, 1)
        Assumed correlation between goal scales (default 0.3).

    Returns
    -------
    float
        :math:`50 + 10\sum w_i x_i / \sqrt{(1-\rho)\sum w_i^2 + \rho(\sum w_i)^2}`.
    """
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__len__") or len(levels) == 0:
        raise InvalidGoalError("a GAS score needs the levels of at least one goal", field="levels")
    xs = [check_level(x) for x in levels]
    if weights is None:
        ws = [1.0] * len(xs)
    else:
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__") or len(weights) != len(xs):
            raise InvalidGoalError(f"give one weight per goal: {len(xs)} levels, "
                                   f"{len(weights) if hasattr(weights, '__len__') else weights!r} weights",
                                   field="weights")
        ws = []
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise InvalidGoalError(f"a goal weight must be a finite number > 0, got {w!r}", field="weights")
            ws.append(float(w))
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 <= rho < 1.0:
        raise InvalidGoalError(f"rho (the inter-goal correlation) must be in [0, 1), got {rho!r}", field="rho")
    s_wx = math.fsum(w * x for w, x in zip(ws, xs))
    s_w2 = math.fsum(w * w for w in ws)
    s_w = math.fsum(ws)
    return 50.0 + 10.0 * s_wx / math.sqrt((1.0 - rho) * s_w2 + rho * s_w * s_w)

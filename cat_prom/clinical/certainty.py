r"""How sure a score is to lie beyond a threshold: posterior probabilities from the CAT's grid posterior.

A CAT session keeps its posterior for θ on the design's quadrature grid
(:attr:`cat_prom.session.CatSession.posterior`, the normalised weights of
:func:`cat_prom.grid.eap` on :meth:`cat_prom.design.Design.grid_theta`). The probability that
the patient's true score lies above a threshold :math:`c`,

.. math::

    P(\theta > c \mid \text{answers}) = \frac{\int_c^{\theta_{max}} f(\theta)\,d\theta}
                                           {\int_{\theta_{min}}^{\theta_{max}} f(\theta)\,d\theta},

is computed from the posterior's values at the nodes: the log posterior (smooth, close to a
parabola) is interpolated between nodes by a cubic spline, and its exponential integrated by the
trapezoidal rule on 16 sub-intervals per grid interval. On the default grid (81 nodes on
[−6, 6]) this agrees with adaptive quadrature of the continuous posterior to about 10⁻⁴
(``tests/reference/test_clinical_reference.py``); the plain trapezoidal rule on the nodes alone
would be off by up to about 10⁻² for a CAT's narrow posterior (SD ≈ 0.3 on a 0.15 spacing).

:func:`prob_beyond_normal` is the normal approximation :math:`\Phi((\hat T - c)/SE)` for
results that kept only a T-score and its SE (no posterior); alert records say which was used.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import ndtr

from ..errors import InvalidDataError

__all__ = ["SIDES", "prob_beyond", "prob_worse_than", "prob_beyond_normal", "worse_side"]

SIDES = ("above", "below")
_REFINE = 16  # fine nodes per grid interval


@lru_cache(maxsize=16)
def _spline_matrix(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Fine nodes ``xf`` (F,) and the matrix ``A`` (F, Q) with ``A @ y`` = the cubic spline of ``y`` at ``xf``.

    A (not-a-knot) cubic spline is linear in the values it interpolates, so its matrix is the
    spline of the identity, built once per node set; each call is then one product.
    """
    x = np.frombuffer(key, dtype=float)
    t = np.linspace(0.0, 1.0, _REFINE + 1)[:-1]
    xf = np.append((x[:-1, None] + np.diff(x)[:, None] * t[None, :]).ravel(), x[-1])
    A = CubicSpline(x, np.eye(x.shape[0]), axis=0)(xf)
    xf.flags.writeable = False
    A.flags.writeable = False
    return xf, A


def worse_side(direction: str) -> str:
    """The side of a threshold that is clinically worse: ``"above"`` when higher is worse, else ``"below"``."""
    if direction == "higher_is_worse":
        return "above"
    if direction == "higher_is_better":
        return "below"
    raise InvalidDataError(f"a bank's direction is 'higher_is_worse' or 'higher_is_better', got {direction!r}",
                           field="direction")


def _side(side: str) -> bool:
    if side not in SIDES:
        raise InvalidDataError(f"side must be 'above' or 'below', got {side!r}", field="side")
    return side == "above"


def prob_beyond(posterior, nodes, threshold, side: str = "above", *, log: bool = False):
    """Posterior probability that the true value lies above (or below) ``threshold``.

    Parameters
    ----------
    posterior : array_like, shape (Q,) or (S, Q)
        The posterior on the nodes: weights or densities (any positive scale), or with ``log=True``
        an unnormalised log density (``-inf`` allowed). One row per person.
    nodes : array_like, shape (Q,)
        Strictly increasing nodes (the design's grid, θ metric).
    threshold : float or array_like (S,)
        On the nodes' metric (θ; convert a T threshold with ``(t - t_mean) / t_sd``).
    side : "above" or "below"
    log : bool
        ``posterior`` holds log densities.

    Returns
    -------
    float for one row, else ndarray (S,): probabilities in [0, 1].
    """
    above = _side(side)
    x = np.asarray(nodes, dtype=float)
    p = np.asarray(posterior, dtype=float)
    one = p.ndim == 1
    P = p[None, :] if one else p
    Q = x.shape[0]
    if x.ndim != 1 or Q < 2 or not np.all(np.diff(x) > 0) or not np.all(np.isfinite(x)):
        raise InvalidDataError("nodes must be a strictly increasing 1-D array of at least 2 finite values",
                               field="nodes")
    if P.ndim != 2 or P.shape[1] != Q:
        raise InvalidDataError(f"posterior must have shape ({Q},) or (S, {Q}) to match the nodes, got {p.shape}",
                               field="posterior")
    with np.errstate(divide="ignore"):
        if log:
            if np.isnan(P).any() or (P == np.inf).any() or not (P > -np.inf).any(axis=1).all():
                raise InvalidDataError("a log posterior must be finite or -inf, and not -inf everywhere",
                                       field="posterior")
            lp = P - P.max(axis=1, keepdims=True)
        else:
            if not np.all(np.isfinite(P)) or (P < 0).any() or not (P > 0).any(axis=1).all():
                raise InvalidDataError("posterior weights must be finite, >= 0 and not all 0", field="posterior")
            lp = np.log(P / P.max(axis=1, keepdims=True))
    c = np.broadcast_to(np.asarray(threshold, dtype=float), (P.shape[0],))
    if not np.all(np.isfinite(c)):
        raise InvalidDataError(f"threshold must be finite, got {threshold!r}", field="threshold")
    # nodes where the density underflowed (weights 0, log -inf): a floor 50 below the row's least finite
    # value (e^-50 of it: nothing) keeps the spline smooth instead of jumping to -inf
    finite = np.isfinite(lp)
    floor = np.where(finite, lp, np.inf).min(axis=1, keepdims=True) - 50.0
    lp = np.where(finite, lp, floor)
    xf, A = _spline_matrix(x.tobytes())
    d = np.exp(np.minimum(lp @ A.T, 50.0))  # (S, F) density on the fine nodes
    seg = 0.5 * (d[:, :-1] + d[:, 1:]) * np.diff(xf)            # (S, F-1) trapezoid areas
    total = seg.sum(axis=1)
    # area of the fine segments wholly above each threshold: tail[s, k] = sum of seg[s, k:]
    tail = np.concatenate([np.cumsum(seg[:, ::-1], axis=1)[:, ::-1], np.zeros((P.shape[0], 1))], axis=1)
    F = xf.shape[0]
    k = np.clip(np.searchsorted(xf, c, side="right") - 1, 0, F - 2)  # the fine segment that holds c
    rows = np.arange(P.shape[0])
    x0, x1 = xf[k], xf[k + 1]
    d0, d1 = d[rows, k], d[rows, k + 1]
    cc = np.clip(c, x0, x1)
    dc = d0 + (d1 - d0) * (cc - x0) / (x1 - x0)
    mass_above = tail[rows, k + 1] + 0.5 * (dc + d1) * (x1 - cc)
    mass_above = np.where(c < x[0], total, np.where(c >= x[-1], 0.0, mass_above))
    prob = np.clip(mass_above / total, 0.0, 1.0)
    if not above:
        prob = 1.0 - prob
    return float(prob[0]) if one else prob


def prob_worse_than(posterior, nodes, threshold, direction: str, *, log: bool = False):
    """Posterior probability that the true value is on the clinically worse side of ``threshold``.

    :func:`prob_beyond` with the side from the bank's ``direction`` (:func:`worse_side`): above on a
    ``higher_is_worse`` bank, below on a ``higher_is_better`` one. ``nodes`` and ``threshold`` on one
    metric (θ, or T when the nodes are given in T units).
    """
    return prob_beyond(posterior, nodes, threshold, worse_side(direction), log=log)


def prob_beyond_normal(t_score: float, t_se: float, threshold_t: float, side: str = "above") -> float:
    r"""Normal approximation: :math:`P(T > c) = \Phi((\hat T - c)/SE)` (or its complement for ``"below"``)."""
    above = _side(side)
    for name, v in (("t_score", t_score), ("threshold_t", threshold_t)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidDataError(f"{name} must be a finite number, got {v!r}", field=name)
    if isinstance(t_se, bool) or not isinstance(t_se, (int, float)) or not math.isfinite(t_se) or t_se <= 0:
        raise InvalidDataError(f"t_se must be a finite number > 0, got {t_se!r}", field="t_se")
    z = (t_score - threshold_t) / t_se
    return float(ndtr(z if above else -z))

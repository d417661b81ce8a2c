r"""Priors for θ on a bank's grid: the population prior and the previous-sitting prior.

The CAT's posterior on the grid (:mod:`cat_prom.grid`) starts from a log prior. Two are built here:

``population``
    The design's normal prior :math:`N(\mu, \sigma^2)` (PROMIS default ``N(0, 1)``): nothing is known
    about the patient.
``previous``
    For a returning patient: a mixture of a normal centred at the last sitting's estimate and the
    population prior,

    .. math::

        \pi(\theta) = w\,N\big(\theta;\ \hat\theta_{prev},\ SE_{prev}^2 + \delta^2\,t\big)
                     + (1 - w)\,N(\theta;\ \mu, \sigma^2),

    where :math:`\delta` is the drift SD per week (how far a person's θ wanders in a week, as a random
    walk: its variance grows linearly with the elapsed time :math:`t` in weeks) and :math:`w` the
    mixture weight. The population component lets the prior give way when the answers disagree with
    the last sitting (a flare): the posterior moves its weight to the component that explains the
    answers. On the grid each component is normalised over the nodes and the mixture is the log of the
    weighted sum, ``logaddexp(log w + log N_prev, log(1-w) + log N_pop)``.

    With ``jump_sd`` :math:`\sigma_J` the second component is not the population prior but the previous
    component widened by a sudden change, :math:`N(\hat\theta_{prev},\ SE_{prev}^2 + \delta^2 t + \sigma_J^2)`
    (:func:`alternative_log_prior`): "changed since last time" rather than "anyone from the population". A flare
    of one SD in a patient far from the population mean is far more likely under it than under the population
    prior, so the prior gives way sooner and the estimate after the switch is not pulled towards the population
    mean. This is the two-state multi-process model of Harrison & Stevens (1976) and West & Harrison (1997, ch. 12):
    a small evolution variance most of the time, a large one when the state jumps.

    The mixture is a robust prior in the sense of O'Hagan & Pericchi (2012, "Bayesian heavy-tailed
    models and conflict resolution: a review", *Brazilian Journal of Probability and Statistics*):
    when data and prior conflict, the posterior discounts the prior. The widening by elapsed time is
    the random-walk state model of the dynamic linear model (West & Harrison, 1997, *Bayesian
    Forecasting and Dynamic Models*).

:func:`estimate_drift_sd` is the method-of-moments estimate of the drift SD from pairs of consecutive
scored sittings, the way a clinic estimates its own (``docs/design.md``, "Previous-sitting prior").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .clinical.change import RELIABLE_Z
from .errors import InvalidDataError
from .grid import normal_log_density
from .stopping import interval_z

__all__ = ["PreviousSitting", "previous_component", "uses_previous", "mixture_parts", "alternative_log_prior", "change_probability", "change_call_open", "previous_log_prior", "log_prior_for", "prior_report",
           "estimate_drift_sd", "DAYS_PER_WEEK"]

DAYS_PER_WEEK = 7.0


@dataclass(frozen=True)
class PreviousSitting:
    """The last scored sitting of a domain, as the engine needs it (no storage: the caller passes it in).

    Attributes
    ----------
    theta : float
        Its θ estimate (EAP, on the bank's metric).
    se : float
        Its standard error (> 0).
    elapsed_days : float
        Days between that sitting and this one (>= 0).
    """

    theta: float
    se: float
    elapsed_days: float

    @classmethod
    def from_value(cls, v: Any) -> "PreviousSitting | None":
        """``None``, a PreviousSitting or a mapping ``{"theta", "se", "elapsed_days"}``, validated."""
        if v is None or isinstance(v, PreviousSitting):
            return v
        if not isinstance(v, Mapping) or set(v) != {"theta", "se", "elapsed_days"}:
            raise InvalidDataError("the previous sitting must be an object {\"theta\": θ, \"se\": SE, "
                                   f"\"elapsed_days\": days}}, got {v!r}", field="previous")
        out = {}
        for key, lo, hi in (("theta", -10.0, 10.0), ("se", 0.0, 10.0), ("elapsed_days", 0.0, 36500.0)):
            x = v[key]
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not lo <= x <= hi \
                    or (key == "se" and x <= 0):
                raise InvalidDataError(f"previous.{key} must be a number in {'(' if key == 'se' else '['}{lo}, {hi}], "
                                       f"got {x!r}", field=f"previous.{key}")
            out[key] = float(x)
        return cls(**out)

    def to_dict(self) -> dict:
        return {"theta": self.theta, "se": self.se, "elapsed_days": self.elapsed_days}


def _grid_log_normal(theta: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """log of N(mean, sd²) normalised over the nodes (its weights sum to 1)."""
    lw = normal_log_density(theta, mean, sd)
    return lw - (lw.max() + math.log(np.exp(lw - lw.max()).sum()))


def previous_component(prior: Mapping, previous: PreviousSitting) -> tuple[float, float]:
    r"""Mean and SD of the widened previous-sitting component: :math:`(\hat\theta, \sqrt{SE^2 + \delta^2 t})`."""
    weeks = previous.elapsed_days / DAYS_PER_WEEK
    return previous.theta, math.sqrt(previous.se ** 2 + prior["drift_sd_per_week"] ** 2 * weeks)


def previous_log_prior(theta: np.ndarray, prior: Mapping, previous: PreviousSitting) -> np.ndarray:
    """The previous-sitting mixture prior (module docstring) at ``theta``, shape (Q,); log of grid weights.

    ``prior`` is a design's prior object with ``mean``, ``sd`` (population), ``drift_sd_per_week``
    and ``mixture_weight``.
    """
    return mixture_parts(theta, prior, previous)[0]


def mixture_parts(theta: np.ndarray, prior: Mapping, previous: PreviousSitting) -> tuple[np.ndarray, np.ndarray]:
    """``(log mixture, log population)`` on the nodes, each normalised over them, shape (Q,) each."""
    w = float(prior["mixture_weight"])
    m, s = previous_component(prior, previous)
    lp_prev = _grid_log_normal(theta, m, s)
    lp_pop = alternative_log_prior(theta, prior, previous)
    if w >= 1.0:
        return lp_prev, lp_pop
    return np.logaddexp(math.log(w) + lp_prev, math.log1p(-w) + lp_pop), lp_pop


def alternative_log_prior(theta: np.ndarray, prior: Mapping, previous: PreviousSitting) -> np.ndarray:
    r"""The mixture's second component ("changed since last time") on the nodes, normalised over them, shape (Q,).

    Without ``jump_sd`` (``None``): the population prior :math:`N(\mu, \sigma^2)`. With it: the previous component
    widened by a sudden change of SD ``jump_sd``, :math:`N(\hat\theta_{prev}, SE_{prev}^2 + \delta^2 t +
    \sigma_J^2)` — the multi-process model of West & Harrison (1997, ch. 12; Harrison & Stevens, 1976, "Bayesian
    forecasting", *JRSS B* 38, 205-247), whose state evolves by a small variance most of the time and by a large one
    when it jumps.
    """
    return _grid_log_normal(theta, *alternative_component(prior, previous))


def alternative_component(prior: Mapping, previous: PreviousSitting) -> tuple[float, float]:
    """Mean and SD of the mixture's second component (:func:`alternative_log_prior`)."""
    jump = prior.get("jump_sd")
    if jump is None:
        return float(prior["mean"]), float(prior["sd"])
    m, s = previous_component(prior, previous)
    return m, math.hypot(s, float(jump))


def change_probability(log_post: np.ndarray, log_mix: np.ndarray, log_pop: np.ndarray, w: float) -> float:
    r"""Posterior probability that the alternative component (the population prior, or the jump component of
    :func:`alternative_log_prior`; ``log_pop``), not the previous sitting's, explains the answers.

    With the answers' evidence :math:`E_q = \ell_q - \log\pi_{mix}(\theta_q)` (the log posterior
    without its mixture prior), :math:`P(\text{change}) = (1-w)\sum_q e^{E_q}\pi_{pop}(\theta_q) /
    \sum_q e^{E_q}\pi_{mix}(\theta_q)`: the mixture component's posterior weight (Bayesian model
    comparison of "as last time" against "anything the population allows"). Before any answer it is
    :math:`1 - w`.
    """
    E = log_post - log_mix
    E = E - E.max()
    num = math.log1p(-w) + float(np.logaddexp.reduce(E + log_pop)) if w < 1 else -math.inf
    den = float(np.logaddexp.reduce(E + log_mix))
    return math.exp(num - den) if num > -math.inf else 0.0


def change_call_open(theta: float, se: float, previous: PreviousSitting, confidence: float,
                     z_reliable: float = RELIABLE_Z) -> bool:
    r"""Whether the reliable-change call against the last sitting is still open: a classification stop whose
    thresholds are the reliable-change limits.

    The sitting will be flagged as a reliable change when :math:`|\hat\theta - \hat\theta_{prev}| > c`,
    :math:`c = z_{RC}\sqrt{SE_{prev}^2 + SE^2}` (Jacobson & Truax, 1991; :func:`cat_prom.clinical.change.is_reliable`).
    The call is settled when the ``confidence`` interval :math:`\hat\theta \pm z\,SE`, :math:`z =
    \Phi^{-1}(\tfrac12 + \tfrac{confidence}2)`, lies wholly inside :math:`(\hat\theta_{prev} - c,
    \hat\theta_{prev} + c)` (no reliable change) or wholly outside it (a reliable change), as the
    ``classification`` stop rule does around one threshold; with two thresholds this is the three-category
    classification CAT of Eggen & Straetmans (2000, "Computerized adaptive testing for classifying examinees into
    three categories", *Educational and Psychological Measurement*, 60, 713-734). Open when
    :math:`\big||\hat\theta - \hat\theta_{prev}| - c\big| \le z\,SE`; ``confidence`` 0 never holds it open.
    """
    if not confidence > 0:
        return False
    c = z_reliable * math.hypot(previous.se, se)
    return bool(abs(abs(theta - previous.theta) - c) <= interval_z(confidence) * se)


def uses_previous(prior: Mapping, previous: PreviousSitting | None) -> bool:
    """Whether a design's prior and the previous sitting given make a previous-sitting prior."""
    return previous is not None and prior.get("type") == "previous"


def log_prior_for(theta: np.ndarray, prior: Mapping, previous: PreviousSitting | None) -> np.ndarray | None:
    """The previous-sitting log prior when the design asks for it and a previous sitting is given, else ``None``
    (the caller then uses the design's population prior)."""
    return previous_log_prior(theta, prior, previous) if uses_previous(prior, previous) else None


def prior_report(prior: Mapping, previous: PreviousSitting | None, *, change_probability: float | None = None,
                 switched_after: int | None = None) -> dict:
    """Which prior a sitting used, with its parameters, as plain JSON (part of a session's result).

    For the previous-sitting prior also ``change_probability`` (:func:`change_probability` after the last
    answer) and ``switched_after``: the number of answers after which the answers disagreed enough with the
    last sitting (``change_probability`` > ``switch_at``) that the previous component was dropped and the
    sitting went on under the population prior (``None`` when it was not).
    """
    pop = {"mean": float(prior["mean"]), "sd": float(prior["sd"])}
    if not uses_previous(prior, previous):
        out = {"type": "population", "population": pop}
        if prior.get("type") == "previous":
            out["note"] = "no previous scored sitting was given: population prior"
        return out
    m, s = previous_component(prior, previous)
    extra = {}
    if prior.get("jump_sd") is not None:
        am, asd = alternative_component(prior, previous)
        extra = {"jump_sd": float(prior["jump_sd"]), "alternative": {"mean": am, "sd": asd}}
    if prior.get("change_confidence"):
        extra["change_confidence"] = float(prior["change_confidence"])
    return {"type": "previous", "population": pop, "previous": previous.to_dict(), **extra,
            "drift_sd_per_week": float(prior["drift_sd_per_week"]), "mixture_weight": float(prior["mixture_weight"]),
            "switch_at": float(prior["switch_at"]), "confirm_below": float(prior["confirm_below"]),
            "component": {"mean": m, "sd": s},
            "change_probability": change_probability, "switched_after": switched_after}


def estimate_drift_sd(theta1, se1, theta2, se2, elapsed_days) -> dict:
    r"""Drift SD per week from pairs of consecutive sittings scored by EAP with the population prior.

    EAP estimates are shrunk towards the prior mean, so their differences understate true change
    and their posterior SDs are not independent errors; the estimate therefore works with the
    *disattenuated* moments (as :func:`cat_prom.calibration.correlation.estimate_correlation` does):
    for EAP, :math:`\mathrm{Var}(	heta_t) = \mathrm{Var}(\hat	heta_t) + \overline{SE_t^2}` exactly, the
    reliability is :math:`\lambda_t = \mathrm{Var}(\hat	heta_t) / \mathrm{Var}(	heta_t)`, and
    :math:`\mathrm{Cov}(	heta_1, 	heta_2) pprox \mathrm{Cov}(\hat	heta_1, \hat	heta_2) /
    (\lambda_1\lambda_2)` (independent measurement at the two sittings; Spearman's correction). Then

    .. math::

        \hat\delta^2 = rac{\mathrm{Var}(	heta_1) + \mathrm{Var}(	heta_2) - 2\,\mathrm{Cov}(	heta_1,
        	heta_2) + (ar{\hat	heta}_2 - ar{\hat	heta}_1)^2}{ar t}

    with :math:`ar t` the mean elapsed time in weeks (a random walk adds :math:`\delta^2` per week to
    the expected squared change), floored at 0. Use pairs with similar intervals, from patients in a
    steady phase of care (a trend or a flare in the sample is counted as drift), a few hundred at least.

    Parameters
    ----------
    theta1, se1, theta2, se2, elapsed_days : array_like (n,)
        EAP estimates and posterior SDs at the earlier and the later sitting, and the days between them.

    Returns
    -------
    dict with ``drift_sd_per_week``, ``n_pairs``, ``mean_elapsed_days`` and ``reliability`` (λ₁, λ₂).
    """
    arrs = [np.asarray(x, dtype=float).ravel() for x in (theta1, se1, theta2, se2, elapsed_days)]
    n = arrs[0].shape[0]
    if n < 10 or any(a.shape[0] != n for a in arrs) or not all(np.isfinite(a).all() for a in arrs):
        raise InvalidDataError("estimate_drift_sd needs equally long, finite arrays of at least 10 pairs")
    t1, s1, t2, s2, days = arrs
    if (days <= 0).any():
        raise InvalidDataError("every pair of sittings needs a positive elapsed time")
    v1, v2 = float(np.var(t1)), float(np.var(t2))
    var1, var2 = v1 + float(np.mean(s1 ** 2)), v2 + float(np.mean(s2 ** 2))
    lam1, lam2 = v1 / var1, v2 / var2
    cov = float(np.mean((t1 - t1.mean()) * (t2 - t2.mean()))) / (lam1 * lam2)
    msq = var1 + var2 - 2.0 * cov + float(t2.mean() - t1.mean()) ** 2
    weeks = float(days.mean()) / DAYS_PER_WEEK
    return {"drift_sd_per_week": math.sqrt(max(msq, 0.0) / weeks), "n_pairs": int(n),
            "mean_elapsed_days": float(days.mean()), "reliability": [lam1, lam2]}

r"""Response-pattern scoring: EAP, MAP, ML and WLE, T-scores, summed-score tables.

Responses are 0-based categories in an array of shape ``(n_persons, n_items)``
with ``NaN`` (or any negative number) for an unanswered item; unanswered items
are simply left out of the likelihood. A pattern with no answered item is **not
scored** by every estimator: θ and SE are NaN, the flag is :data:`FLAG_NO_RESPONSES`
(the prior is no evidence about the person; see :mod:`cat_prom.evidence`).

* **EAP** (Bock & Mislevy, 1982): posterior mean and SD on a quadrature grid
  (default 81 points on [-6, 6]) under a normal prior (default N(0, 1)), by
  :func:`cat_prom.grid.eap`.
* **MAP** (Bayes modal): the posterior mode; SE :math:`1/\sqrt{I(\hat\theta) + 1/\sigma^2}`.
* **ML**: the likelihood maximum in the search interval; SE :math:`1/\sqrt{I(\hat\theta)}`.
  A pattern of all-lowest or all-highest categories has no finite maximum:
  the bound of the interval is returned with an explicit flag.
* **WLE** (Warm, 1989): a root of :math:`\ell'(\theta) + J(\theta)/(2I(\theta)) = 0`, where
  :math:`J = \sum_i\sum_k P'_{ik}P''_{ik}/P_{ik}`; SE :math:`1/\sqrt{I(\hat\theta)}`.

SEs come from the test (expected Fisher) information, as catR's ``semTheta``
reports them.

MAP, ML and WLE are found by :func:`cat_prom.modal.solve`, vectorised over persons: every
root of the estimating equation in the search interval (the ``grid``'s min and max) is
bracketed on nodes at most 0.15 apart and refined by Newton's method with observed
information to within 1e-10 in θ (see :mod:`cat_prom.modal`). The ML and MAP equations have
at most one root; Warm's can have several, and the WLE returned is then the root with the
largest weighted likelihood (Warm's definition; for 2PL and GPCM items the maximiser of
:math:`L\sqrt{I}`). A pattern whose equation has no falling root in the interval gets the
lower bound when the equation is non-positive there and the upper bound otherwise, flagged
for ML and WLE (not for MAP).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import grid as _grid
from . import irt, modal
from .errors import InvalidBankError, InvalidDataError, InvalidDesignError

__all__ = [
    "ScoreResult", "score", "eap", "map_estimate", "ml_estimate", "wle_estimate",
    "summed_score_table", "lord_wingersky", "loglik_on_grid", "FLAG_ALL_LOWEST", "FLAG_ALL_HIGHEST",
    "FLAG_NO_ROOT", "FLAG_NO_RESPONSES",
]

FLAG_ALL_LOWEST = "all_lowest: no finite ML estimate, lower search bound returned"
FLAG_ALL_HIGHEST = "all_highest: no finite ML estimate, upper search bound returned"
FLAG_NO_ROOT = "no_root: estimating equation has no root in the search interval, bound returned"
FLAG_NO_RESPONSES = "no_responses: no item answered, not scored"


@dataclass
class ScoreResult:
    """Estimates for a set of persons.

    Attributes
    ----------
    theta, se : ndarray, shape (n_persons,)
    n_answered : ndarray of int, shape (n_persons,)
    flags : list of str, one per person ('' when nothing to report)
    method : str
    """

    theta: np.ndarray
    se: np.ndarray
    n_answered: np.ndarray
    flags: list
    method: str


# ------------------------------------------------------------------------------------ inputs
def _params(params) -> irt.ItemParams:
    """Accept ItemParams, an ItemBank (its ``params``) or an (a, b[, model]) tuple."""
    if isinstance(params, irt.ItemParams):
        return params
    if hasattr(params, "params") and isinstance(params.params, irt.ItemParams):
        return params.params
    if isinstance(params, (tuple, list)) and 2 <= len(params) <= 3:
        return irt.item_params(*params)
    raise InvalidBankError(f"params must be ItemParams, an ItemBank or an (a, b[, model]) tuple; "
                           f"got {type(params).__name__}")


def _prep(responses, params):
    p = _params(params)
    try:
        x = np.asarray(responses, dtype=float)
    except (TypeError, ValueError):
        raise InvalidDataError("responses must be numbers (0-based categories; NaN for unanswered)") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != p.n_items:
        raise InvalidDataError(f"responses must have shape (n_persons, {p.n_items}), got {x.shape}")
    missing = np.isnan(x) | (x < 0)
    xi = np.where(missing, 0, x)
    if not np.all(np.isfinite(xi)) or np.any(xi != np.round(xi)):
        r, c = np.argwhere(~np.isfinite(xi) | (xi != np.round(xi)))[0]
        raise InvalidDataError(f"row {r}, item {c}: response {x[r, c]} is not a whole category number",
                               row=int(r), column=int(c))
    xi = xi.astype(np.intp)
    over = ~missing & (xi >= p.n_cat[None, :])
    if over.any():
        r, c = np.argwhere(over)[0]
        raise InvalidDataError(f"row {r}, item {c}: category {xi[r, c]} out of range 0-{p.n_cat[c] - 1}",
                               row=int(r), column=int(c))
    return p, xi, ~missing


def _prior(prior) -> tuple[float, float]:
    try:
        mean, sd = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise InvalidDesignError(f"prior must be (mean, sd), got {prior!r}", field="prior") from None
    if not (math.isfinite(mean) and math.isfinite(sd) and sd > 0):
        raise InvalidDesignError(f"prior needs a finite mean and an sd > 0, got ({mean}, {sd})", field="prior")
    return mean, sd


def loglik_on_grid(responses, params, theta):
    """Log-likelihood of each response pattern at each grid node, shape (n_persons, n_theta)."""
    p, xi, ans = _prep(responses, params)
    logp = irt.log_probabilities(theta, p)
    logp = np.maximum(logp, -1e6).reshape(theta.shape[0], -1)  # padded categories never chosen
    return np.asarray(modal.pattern_matrix(xi, ans, p.kmax) @ np.ascontiguousarray(logp.T))


# ------------------------------------------------------------------------------------ EAP
def eap(responses, params, *, grid=_grid.DEFAULT_GRID, prior=(0.0, 1.0)) -> ScoreResult:
    """Expected a posteriori θ and posterior SD for each response pattern.

    Parameters
    ----------
    responses : array_like, shape (n_persons, n_items); NaN = unanswered
    params : :class:`~cat_prom.irt.ItemParams` (e.g. ``bank.params``)
    grid : (min, max, n_points) of the quadrature grid (:func:`cat_prom.grid.nodes`)
    prior : (mean, sd) of the normal prior
    """
    p, xi, ans = _prep(responses, params)
    mean, sd = _prior(prior)
    theta = _grid.nodes(*grid)
    log_post = loglik_on_grid(responses, p, theta)
    log_post += _grid.normal_log_density(theta, mean, sd)
    _, m, s = _grid.eap(log_post, theta, out=log_post)
    n = ans.sum(axis=1)
    empty = n == 0
    m[empty] = s[empty] = np.nan
    return ScoreResult(m, s, n, [FLAG_NO_RESPONSES if e else "" for e in empty.tolist()], "eap")


# ------------------------------------------------------------------------------------ modal
def _modal(responses, params, method, *, bounds=(-6.0, 6.0), prior=(0.0, 1.0)) -> ScoreResult:
    p, xi, ans = _prep(responses, params)
    mean, sd = _prior(prior)
    try:
        lo, hi = float(bounds[0]), float(bounds[1])
    except (TypeError, ValueError, IndexError):
        raise InvalidDesignError(f"bounds must be (min, max), got {bounds!r}", field="grid") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise InvalidDesignError(f"the search interval needs finite min < max, got [{lo}, {hi}]", field="grid")
    n_q = max(81, int(math.ceil((hi - lo) / modal.BRACKET_STEP - 1e-9)) + 1)
    n = xi.shape[0]
    n_ans = ans.sum(axis=1)
    theta = np.full(n, mean)
    info = np.zeros(n)
    flag = np.zeros(n, dtype=int)
    r = np.flatnonzero(n_ans > 0)
    theta[r], info[r], flag[r] = modal.solve(p, xi[r], ans[r], method, _grid.nodes(lo, hi, n_q), (mean, sd))
    if method == "map":
        se = 1.0 / np.sqrt(info + 1.0 / sd ** 2)
    else:
        with np.errstate(divide="ignore"):
            se = np.where(info > 0, 1.0 / np.sqrt(np.maximum(info, 1e-300)), np.inf)
    codes = np.full(n, "", dtype=object)
    if method != "map":
        lowest = ans & (xi == 0)
        highest = ans & (xi == (p.n_cat[None, :] - 1))
        at_bound = flag != 0
        codes[at_bound] = FLAG_NO_ROOT
        codes[at_bound & (highest == ans).all(axis=1)] = FLAG_ALL_HIGHEST
        codes[at_bound & (lowest == ans).all(axis=1)] = FLAG_ALL_LOWEST
    empty = n_ans == 0
    codes[empty] = FLAG_NO_RESPONSES
    theta[empty] = se[empty] = np.nan
    return ScoreResult(theta, se, n_ans, codes.tolist(), method)


def map_estimate(responses, params, *, bounds=(-6.0, 6.0), prior=(0.0, 1.0)) -> ScoreResult:
    """Bayes modal θ under a normal prior, SE from test information plus the prior's."""
    return _modal(responses, params, "map", bounds=bounds, prior=prior)


def ml_estimate(responses, params, *, bounds=(-6.0, 6.0)) -> ScoreResult:
    """Maximum-likelihood θ in ``bounds``; extreme patterns return a bound with a flag."""
    return _modal(responses, params, "ml", bounds=bounds)


def wle_estimate(responses, params, *, bounds=(-6.0, 6.0)) -> ScoreResult:
    """Warm's (1989) weighted likelihood estimate, SE from test information (see the module notes
    for the root returned when the equation has several)."""
    return _modal(responses, params, "wle", bounds=bounds)


def score(responses, params, method="eap", *, grid=_grid.DEFAULT_GRID, prior=(0.0, 1.0)) -> ScoreResult:
    """Score response patterns with ``method`` in {'eap', 'map', 'ml', 'wle'}.

    ``grid`` is EAP's quadrature grid; its (min, max) is the search interval of MAP, ML and WLE.
    """
    m = method.lower() if isinstance(method, str) else method
    if m == "eap":
        return eap(responses, params, grid=grid, prior=prior)
    bounds = (grid[0], grid[1])
    if m == "map":
        return map_estimate(responses, params, bounds=bounds, prior=prior)
    if m == "ml":
        return ml_estimate(responses, params, bounds=bounds)
    if m == "wle":
        return wle_estimate(responses, params, bounds=bounds)
    raise InvalidDataError(f"unknown scoring method {method!r}; use eap, map, ml or wle")


def lord_wingersky(theta, params) -> np.ndarray:
    """Likelihood of each summed score at each θ (Lord & Wingersky, 1984).

    Returns
    -------
    ndarray, shape (n_theta, max_score + 1)
        ``L[q, s] = P(sum of categories = s | θ_q)``.
    """
    p = _params(params)
    P = irt.probabilities(theta, p)
    L = np.ones((theta.shape[0], 1))
    for i in range(p.n_items):  # the recursion is sequential over items by nature
        k = int(p.n_cat[i])
        new = np.zeros((theta.shape[0], L.shape[1] + k - 1))
        for c in range(k):
            new[:, c: c + L.shape[1]] += L * P[:, i, c: c + 1]
        L = new
    return L


def summed_score_table(params, *, grid=_grid.DEFAULT_GRID, prior=(0.0, 1.0)) -> dict:
    """EAP[summed score] and its posterior SD for each possible summed score.

    The summed score is the sum of 0-based categories; add the sum of each
    item's lowest response value to express it on the paper form's scale.

    Returns
    -------
    dict with ``sum_score`` (int array), ``theta`` and ``se`` (float arrays).
    """
    p = _params(params)
    mean, sd = _prior(prior)
    theta = _grid.nodes(*grid)
    w = _grid.normal_weights(theta, mean, sd)
    L = lord_wingersky(theta, p) * w[:, None]  # (Q, S)
    tot = L.sum(axis=0)
    m = (theta @ L) / tot
    var = ((theta * theta) @ L) / tot - m * m
    return {"sum_score": np.arange(L.shape[1]), "theta": m, "se": np.sqrt(np.maximum(var, 0.0)),
            "probability": tot}

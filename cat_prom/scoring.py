r"""Response-pattern scoring: EAP, MAP, ML and WLE, T-scores, summed-score tables.

Responses are 0-based categories in an array of shape ``(n_persons, n_items)``
with ``NaN`` (or any negative number) for an unanswered item; unanswered items
are simply left out of the likelihood.

* **EAP** (Bock & Mislevy, 1982): posterior mean and SD on a quadrature grid
  (default 81 points on [-6, 6]) under a normal prior (default N(0, 1)).
* **MAP** (Bayes modal): the posterior mode; SE :math:`1/\sqrt{I(\hat\theta) + 1/\sigma^2}`.
* **ML**: the likelihood maximum in the search interval; SE :math:`1/\sqrt{I(\hat\theta)}`.
  A pattern of all-lowest or all-highest categories has no finite maximum:
  the bound of the interval is returned with an explicit flag.
* **WLE** (Warm, 1989): the root of :math:`\ell'(\theta) + J(\theta)/(2I(\theta))`, where
  :math:`J = \sum_i\sum_k P'_{ik}P''_{ik}/P_{ik}`; SE :math:`1/\sqrt{I(\hat\theta)}`.

SEs come from the test (expected Fisher) information, as catR's ``semTheta``
reports them. The optimisers are vectorised safeguarded Newton iterations on a
bracket, so a file of many persons is scored without a Python loop over them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import irt
from .errors import InvalidDataError

__all__ = [
    "ScoreResult", "score", "eap", "map_estimate", "ml_estimate", "wle_estimate",
    "summed_score_table", "lord_wingersky", "FLAG_ALL_LOWEST", "FLAG_ALL_HIGHEST", "FLAG_NO_ROOT",
    "FLAG_NO_RESPONSES",
]

FLAG_ALL_LOWEST = "all_lowest: no finite ML estimate, lower search bound returned"
FLAG_ALL_HIGHEST = "all_highest: no finite ML estimate, upper search bound returned"
FLAG_NO_ROOT = "no_root: estimating equation has no root in the search interval, bound returned"
FLAG_NO_RESPONSES = "no_responses: no item answered, prior returned"


@dataclass
class ScoreResult:
    """Estimates for a set of persons.

    Attributes
    ----------
    theta, se : ndarray, shape (n_persons,)
    n_answered : ndarray of int, shape (n_persons,)
    flags : list of str, one per person ('' when nothing to report)
    """

    theta: np.ndarray
    se: np.ndarray
    n_answered: np.ndarray
    flags: list
    method: str


def _params(params) -> irt.ItemParams:
    """Accept ItemParams, an ItemBank (its ``params``) or an (a, b[, model]) tuple."""
    if isinstance(params, irt.ItemParams):
        return params
    if hasattr(params, "params") and isinstance(params.params, irt.ItemParams):
        return params.params
    if isinstance(params, (tuple, list)) and 2 <= len(params) <= 3:
        return irt.item_params(*params)
    raise TypeError("params must be ItemParams, an ItemBank or an (a, b[, model]) tuple")


def _prep(responses, params):
    p = _params(params)
    x = np.asarray(responses, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != p.n_items:
        raise InvalidDataError(f"responses must have shape (n_persons, {p.n_items}), got {x.shape}")
    missing = np.isnan(x) | (x < 0)
    xi = np.where(missing, 0, x)
    if np.any(xi != np.round(xi)):
        r, c = np.argwhere(xi != np.round(xi))[0]
        raise InvalidDataError(f"row {r}, item {c}: response {x[r, c]} is not a whole category number",
                               row=int(r), column=int(c))
    xi = xi.astype(np.intp)
    over = ~missing & (xi >= p.n_cat[None, :])
    if over.any():
        r, c = np.argwhere(over)[0]
        raise InvalidDataError(f"row {r}, item {c}: category {xi[r, c]} out of range 0-{p.n_cat[c] - 1}",
                               row=int(r), column=int(c))
    return p, xi, ~missing


def _onehot(xi, answered, kmax):
    n, m = xi.shape
    oh = np.zeros((n, m, kmax))
    rows, cols = np.nonzero(answered)
    oh[rows, cols, xi[rows, cols]] = 1.0
    return oh.reshape(n, m * kmax)


def loglik_on_grid(responses, params, theta):
    """Log-likelihood of each response pattern at each grid node, shape (n_persons, n_theta)."""
    p, xi, ans = _prep(responses, params)
    logp = irt.log_probabilities(theta, p)
    logp = np.maximum(logp, -1e6).reshape(theta.shape[0], -1)  # padded categories never chosen
    return _onehot(xi, ans, p.kmax) @ logp.T


def eap(responses, params, *, grid=(-6.0, 6.0, 81), prior=(0.0, 1.0)) -> ScoreResult:
    """Expected a posteriori θ and posterior SD for each response pattern.

    Parameters
    ----------
    responses : array_like, shape (n_persons, n_items); NaN = unanswered
    params : :class:`~cat_prom.irt.ItemParams` (e.g. ``bank.params``)
    grid : (min, max, n_points) of the quadrature grid
    prior : (mean, sd) of the normal prior
    """
    p, xi, ans = _prep(responses, params)
    theta = np.linspace(*grid[:2], int(grid[2]))
    ll = loglik_on_grid(responses, p, theta)
    z = (theta - prior[0]) / prior[1]
    lp = ll - 0.5 * z * z
    lp -= lp.max(axis=1, keepdims=True)
    w = np.exp(lp)
    w /= w.sum(axis=1, keepdims=True)
    m = w @ theta
    var = w @ (theta * theta) - m * m
    n = ans.sum(axis=1)
    return ScoreResult(m, np.sqrt(np.maximum(var, 0.0)), n, ["" for _ in n], "eap")


def _pattern_derivs(theta, p, xi, ans, need_j=False):
    """Score dl/dθ, test information I and (optionally) J at a θ per person."""
    P, dP, d2P = irt.derivatives(theta, p)  # (n, m, K)
    n = theta.shape[0]
    rows = np.arange(n)[:, None]
    cols = np.arange(p.n_items)[None, :]
    Px = P[rows, cols, xi]
    dPx = dP[rows, cols, xi]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(ans, dPx / np.where(Px > 1e-300, Px, 1e-300), 0.0).sum(axis=1)
        safe = np.where(P > 1e-300, P, 1.0)
        info_items = np.where(P > 1e-300, dP * dP / safe, 0.0).sum(axis=2)
        I = np.where(ans, info_items, 0.0).sum(axis=1)
        J = None
        if need_j:
            j_items = np.where(P > 1e-300, dP * d2P / safe, 0.0).sum(axis=2)
            J = np.where(ans, j_items, 0.0).sum(axis=1)
    return g, I, J


def _solve(fun, lo, hi, x0, n_iter=100, tol=1e-10):
    """Vectorised safeguarded Newton/bisection for decreasing functions on [lo, hi].

    ``fun(x, rows) -> (g, slope)`` evaluates the persons ``rows`` at ``x``
    (same length). Returns the root (clipped to bounds) and flags -1
    (g(lo) <= 0: root at or below lo), +1 (g(hi) >= 0), 0 (interior). Only
    persons not yet converged are evaluated at each iteration.
    """
    n = x0.shape[0]
    every = np.arange(n)
    a = np.full(n, lo)
    b = np.full(n, hi)
    ga, _ = fun(a, every)
    gb, _ = fun(b, every)
    flag = np.zeros(n, dtype=int)
    flag[ga <= 0] = -1
    flag[(gb >= 0) & (flag == 0)] = 1
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    rows = np.flatnonzero(flag == 0)
    for _ in range(n_iter):
        if rows.size == 0:
            break
        xr, ar, br = x[rows], a[rows], b[rows]
        g, slope = fun(xr, rows)
        # keep the bracket: g decreasing, so g > 0 means the root is to the right
        ar = np.where(g > 0, xr, ar)
        br = np.where(g <= 0, xr, br)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xr - g / slope
        ok = np.isfinite(newton) & (newton > ar) & (newton < br) & (slope < 0)
        x_new = np.where(ok, newton, 0.5 * (ar + br))
        done = (np.abs(x_new - xr) < tol) | (br - ar < tol)
        x[rows], a[rows], b[rows] = x_new, ar, br
        rows = rows[~done]
    x = np.where(flag == -1, lo, np.where(flag == 1, hi, x))
    return x, flag


def _modal(responses, params, method, *, bounds=(-6.0, 6.0), prior=(0.0, 1.0)) -> ScoreResult:
    p, xi, ans = _prep(responses, params)
    lo, hi = float(bounds[0]), float(bounds[1])
    n_ans = ans.sum(axis=1)
    start = eap(responses, p, grid=(lo, hi, 81), prior=prior if method == "map" else (0.0, 2.0)).theta
    inv_var = 1.0 / prior[1] ** 2

    def fun(th, rows):
        g, I, J = _pattern_derivs(th, p, xi[rows], ans[rows], need_j=(method == "wle"))
        if method == "map":
            return g - (th - prior[0]) * inv_var, -(I + inv_var)
        if method == "ml":
            return g, -I
        with np.errstate(divide="ignore", invalid="ignore"):
            return g + np.where(I > 0, J / (2 * I), 0.0), -I  # Fisher-scoring slope (approximate)

    theta, flag = _solve(fun, lo, hi, start)
    _, I, _ = _pattern_derivs(theta, p, xi, ans)
    if method == "map":
        se = 1.0 / np.sqrt(I + inv_var)
    else:
        with np.errstate(divide="ignore"):
            se = np.where(I > 0, 1.0 / np.sqrt(np.maximum(I, 1e-300)), np.inf)
    lowest = ans & (xi == 0)
    highest = ans & (xi == (p.n_cat[None, :] - 1))
    all_low = (lowest == ans).all(axis=1)
    all_high = (highest == ans).all(axis=1)
    at_bound = flag != 0
    codes = np.full(theta.shape[0], "", dtype=object)
    if method != "map":
        codes[at_bound] = FLAG_NO_ROOT
        codes[at_bound & all_high] = FLAG_ALL_HIGHEST
        codes[at_bound & all_low] = FLAG_ALL_LOWEST
    codes[n_ans == 0] = FLAG_NO_RESPONSES
    flags = codes.tolist()
    if (n_ans == 0).any():
        empty = n_ans == 0
        theta = np.where(empty, prior[0], theta)
        se = np.where(empty, prior[1] if method == "map" else np.inf, se)
    return ScoreResult(theta, se, n_ans, flags, method)


def map_estimate(responses, params, *, bounds=(-6.0, 6.0), prior=(0.0, 1.0)) -> ScoreResult:
    """Bayes modal θ under a normal prior, SE from test information plus the prior's."""
    return _modal(responses, params, "map", bounds=bounds, prior=prior)


def ml_estimate(responses, params, *, bounds=(-6.0, 6.0)) -> ScoreResult:
    """Maximum-likelihood θ in ``bounds``; extreme patterns return a bound with a flag."""
    return _modal(responses, params, "ml", bounds=bounds)


def wle_estimate(responses, params, *, bounds=(-6.0, 6.0)) -> ScoreResult:
    """Warm's (1989) weighted likelihood estimate, SE from test information."""
    return _modal(responses, params, "wle", bounds=bounds)


def score(responses, params, method="eap", *, grid=(-6.0, 6.0, 81), prior=(0.0, 1.0)) -> ScoreResult:
    """Score response patterns with ``method`` in {'eap', 'map', 'ml', 'wle'}."""
    method = method.lower()
    if method == "eap":
        return eap(responses, params, grid=grid, prior=prior)
    bounds = (grid[0], grid[1])
    if method == "map":
        return map_estimate(responses, params, bounds=bounds, prior=prior)
    if method == "ml":
        return ml_estimate(responses, params, bounds=bounds)
    if method == "wle":
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


def summed_score_table(params, *, grid=(-6.0, 6.0, 81), prior=(0.0, 1.0)) -> dict:
    """EAP[summed score] and its posterior SD for each possible summed score.

    The summed score is the sum of 0-based categories; add the sum of each
    item's lowest response value to express it on the paper form's scale.

    Returns
    -------
    dict with ``sum_score`` (int array), ``theta`` and ``se`` (float arrays).
    """
    p = _params(params)
    theta = np.linspace(grid[0], grid[1], int(grid[2]))
    w = np.exp(-0.5 * ((theta - prior[0]) / prior[1]) ** 2)
    L = lord_wingersky(theta, p) * w[:, None]  # (Q, S)
    tot = L.sum(axis=0)
    m = (theta @ L) / tot
    var = ((theta * theta) @ L) / tot - m * m
    return {"sum_score": np.arange(L.shape[1]), "theta": m, "se": np.sqrt(np.maximum(var, 0.0)),
            "probability": tot / w.sum()}

r"""Marginal maximum likelihood item calibration by the EM algorithm (Bock and Aitkin, 1981).

:func:`calibrate` is the estimator; the E-step (:func:`e_step`), the Fisher-scoring
M-step (:func:`m_step`) and the SQUAREM-accelerated cycle loop (:class:`_EM`) are
its parts. See the package docstring for the model and the references.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .. import grid
from ..errors import CalibrationError, InvalidDataError
from .model import (A_MAX, LOG_FLOOR, eta_to_ab, feasible, ids_of, log_slope_prior, logp_eta, prepare_responses,
                    probs_jac, quadrature)
from .prepare import (category_counts, check_models, check_slope_prior, check_weights, fixed_spec as _fixed_spec,
                      patterns, sparse_categories, starting_values)
from .results import CalibrationResult, ItemIssue

__all__ = ["calibrate", "ProgressCallback"]

ProgressCallback = Callable[[int, float, float], Any]


def calibrate(responses: ArrayLike, model: str | Sequence[str] = "grm", *,
              ids: Sequence[str] | None = None,
              n_categories: int | Sequence[int] | None = None,
              weights: ArrayLike | None = None,
              fixed: Any = None,
              estimate_latent: bool | None = None,
              start: str | tuple = "auto",
              n_quad: int = 61, quad_bound: float = 6.0,
              max_iter: int = 500, tol: float = 1e-4,
              min_count: float = 5, collapse_sparse: bool = False,
              slope_prior: tuple[float, float] | None = None,
              se: bool = False,
              accelerate: bool = True,
              progress: ProgressCallback | None = None) -> CalibrationResult:
    r"""Marginal maximum likelihood item calibration by EM (Bock and Aitkin, 1981).

    The marginal log-likelihood maximised is

    .. math::

        \ell = \sum_p w_p \log \sum_q \pi_q \prod_{i \in A_p} P_{i x_{pi}}(\theta_q),

    where :math:`A_p` is the set of items person *p* answered, :math:`\pi_q`
    the normal quadrature weights and :math:`w_p` optional frequency weights.
    The E-step computes the posterior over the nodes for every person with one
    matrix product (one-hot responses ``(n_persons, n_items*kmax)`` times
    :math:`\log P` ``(n_items*kmax, n_q)``) and the expected category counts
    :math:`r_{ikq}` with a second; the M-step is Fisher scoring on
    :math:`\sum_{qk} r_{ikq}\log P_{ik}(\theta_q)`, vectorised across items,
    with step halving so every cycle increases :math:`\ell`.

    Parameters
    ----------
    responses : array_like, shape (n_persons, n_items)
        0-based categories; NaN or -1 for not answered. Missing answers are left
        out of the person's likelihood (valid under missing at random, e.g. CAT).
    model : {"grm", "gpcm"} or sequence of them, one per item
    ids : sequence of str, optional
        Item ids (default ``I1..In``); used in messages, results and ``fixed``.
    n_categories : int or sequence of int, optional
        Categories per item; default ``max observed + 1``.
    weights : array_like, shape (n_persons,), optional
        Frequency weights (e.g. counts of response patterns).
    fixed : ItemBank or mapping, optional
        Anchor items held at known parameters: an :class:`~cat_prom.bank.ItemBank`
        (items matched by id) or ``{id or column: (a, thresholds[, model])}``.
        The remaining items are calibrated onto the anchors' metric.
    estimate_latent : bool, optional
        Estimate the latent mean and SD (normal, re-fitted each cycle: the
        "multiple weights updating" FIPC of Kim, 2006). Default: True when
        ``fixed`` is given, else False (the metric is then N(0, 1)).
    start : "auto" | "simple" | "girth" | (a, b)
        Starting values: simple moment-based values (default), girth's GRM MML
        (complete or randomly missing GRM data only), or explicit arrays.
    n_quad, quad_bound : int, float
        Rectangular quadrature: ``n_quad`` equally spaced nodes on ±``quad_bound``.
    max_iter : int
        Maximum EM cycles.
    tol : float
        Convergence when the largest change of any slope or intercept
        (slope-intercept metric, as in mirt) between cycles is below ``tol``.
    min_count : float
        Categories with fewer (weighted) observations are reported in
        ``sparse_categories``; categories with none make the calibration fail
        unless ``collapse_sparse``.
    collapse_sparse : bool
        Merge each sparse category into its adjacent category with fewer
        observations until every category has at least ``min_count``; the
        mappings are in ``result.collapsed``.
    slope_prior : (float, float), optional
        ``(mu, sigma)`` of a log-normal prior on the slopes, making the
        estimates MAP (Bayes modal, Mislevy 1986) instead of ML. Off by default
        (pure ML, as mirt); ``(0.0, 0.5)`` keeps slopes finite on thin data
        such as small CAT samples where an item was given to few people. With
        a prior, ``history`` tracks the log posterior (log-likelihood + log
        prior), which is what the EM increases; ``loglik`` stays the marginal
        log-likelihood.
    se : bool
        Also compute standard errors from the cross-product of person scores
        (the "XPD" information; adequate for reporting, slightly liberal).
    accelerate : bool
        SQUAREM extrapolation (Varadhan and Roland, 2008) between EM cycles;
        an extrapolated point is kept only if it does not lower the
        log-likelihood, so the sequence stays monotone.
    progress : callable, optional
        Called as ``progress(cycle, loglik, max_change)`` after each cycle.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    InvalidDataError
        Malformed responses (non-integer, negative, wrong shape).
    CalibrationError
        An item nobody answered, an item with a single observed category, an
        unobserved category without ``collapse_sparse``, or bad ``fixed``.
    """
    t0 = time.perf_counter()
    X = prepare_responses(responses)
    N, I = X.shape
    ids = ids_of(None, I, ids)
    if len(set(ids)) != I:
        raise InvalidDataError("item ids must be unique")
    w = check_weights(weights, N)
    fixed_spec = _fixed_spec(fixed, ids, I)
    models = check_models(model, fixed_spec, I)
    is_gpcm = np.array([m == "gpcm" for m in models])
    is_fixed = np.zeros(I, dtype=bool)
    is_fixed[list(fixed_spec)] = True
    n_resp = (X >= 0).sum(axis=0)
    n_cat = category_counts(X, ids, n_categories, fixed_spec)
    sparse_found, collapsed = sparse_categories(X, w, ids, n_cat, is_fixed, min_count, collapse_sparse)
    K = int(n_cat.max())
    pat, wp, ind, n_persons = patterns(X, w, K)
    theta, _ = quadrature(n_quad, quad_bound)
    eta = starting_values(start, X, w, n_cat, is_gpcm, K, fixed_spec, models, ids)
    slope_prior = check_slope_prior(slope_prior)
    if estimate_latent is None:
        estimate_latent = bool(is_fixed.any())
    if estimate_latent and not is_fixed.any():
        raise CalibrationError("estimate_latent=True needs fixed anchor items to identify the metric")

    em = _EM(ind, wp, theta, n_cat, is_gpcm, ~is_fixed, slope_prior, estimate_latent)
    eta, (mu, sd), history, converged, n_iter, item_change = em.run(eta, max_iter, tol, accelerate, progress)
    ll, post, _ = e_step(ind, eta, theta, np.log(grid.normal_weights(theta, mu, sd)), wp, n_cat, is_gpcm)
    history.append(ll + em.log_prior(eta))

    a, b = eta_to_ab(eta, n_cat, is_gpcm)
    for j, (a_f, thr, _) in fixed_spec.items():  # exact bank values for anchors
        a[j] = a_f
        b[j, :] = np.nan
        b[j, : len(thr)] = thr
    if b.shape[1] < K - 1:
        b = np.pad(b, ((0, 0), (0, K - 1 - b.shape[1])), constant_values=np.nan)
    item_conv = (item_change < tol) | is_fixed
    issues = _item_issues(ids, a, b, item_conv, item_change, is_fixed, n_iter)

    se_a = se_b = None
    if se:
        from .se import xpd_standard_errors
        se_a, se_b = xpd_standard_errors(pat, wp, post, eta, theta, n_cat, is_gpcm, ~is_fixed)

    return CalibrationResult(
        ids=tuple(ids), a=a, b=b, models=tuple(models), loglik=float(ll), n_iter=n_iter, converged=converged,
        item_converged=item_conv, issues=tuple(issues), history=tuple(history), se_a=se_a, se_b=se_b,
        sparse_categories=tuple(sparse_found), collapsed=tuple(collapsed), fixed=is_fixed,
        latent_mean=mu, latent_sd=sd, n_persons=n_persons, n_responses=n_resp.astype(np.int64),
        elapsed_s=time.perf_counter() - t0,
    )


def _item_issues(ids, a, b, item_conv, item_change, is_fixed, n_iter) -> list[ItemIssue]:
    """Items that did not converge, hit the slope bound, barely discriminate or have extreme thresholds."""
    issues = []
    for j in range(len(ids)):
        if is_fixed[j]:
            continue
        if not item_conv[j]:
            issues.append(ItemIssue(ids[j], "not_converged",
                                    f"item {ids[j]!r}: parameters still changed by {item_change[j]:.2g} after "
                                    f"{n_iter} cycles; raise max_iter or inspect the item"))
        if a[j] > 0.9 * A_MAX:
            issues.append(ItemIssue(ids[j], "slope_at_bound",
                                    f"item {ids[j]!r}: slope {a[j]:.3g} at the upper bound (near-perfect separation); "
                                    f"check for a duplicate or sparse item"))
        elif a[j] < 0.05:
            issues.append(ItemIssue(ids[j], "slope_near_zero",
                                    f"item {ids[j]!r}: slope {a[j]:.3g} ~ 0; the item does not discriminate "
                                    f"(is it reverse-keyed?)"))
        if np.nanmax(np.abs(b[j])) > 10:
            issues.append(ItemIssue(ids[j], "extreme_threshold",
                                    f"item {ids[j]!r}: a threshold beyond ±10 ({np.nanmax(np.abs(b[j])):.3g}); "
                                    f"consider collapse_sparse=True"))
    return issues


class _EM:
    """EM cycles over fixed data, optionally SQUAREM-accelerated (Varadhan and Roland, 2008).

    The state is ``(eta, (mu, sd))``: slope-intercept rows and the latent normal (re-estimated
    each cycle when ``estimate_latent``). Every accepted point raises the log-likelihood (or the
    log posterior with a slope prior).
    """

    def __init__(self, ind, wp, theta, n_cat, is_gpcm, free, slope_prior, estimate_latent):
        self.ind, self.wp, self.theta = ind, wp, theta
        self.n_cat, self.is_gpcm, self.free = n_cat, is_gpcm, free
        self.slope_prior, self.estimate_latent = slope_prior, estimate_latent

    def log_prior(self, eta) -> float:
        """Log slope prior of the free items (0 without a prior)."""
        if self.slope_prior is None:
            return 0.0
        return float(log_slope_prior(eta[self.free, 0], self.slope_prior)[0].sum())

    def cycle(self, e, lat):
        """One EM cycle from (eta, (mu, sd)): returns the objective at the input and the next state."""
        theta = self.theta
        lp = np.log(grid.normal_weights(theta, lat[0], lat[1]))
        ll_, post_, r_ = e_step(self.ind, e, theta, lp, self.wp, self.n_cat, self.is_gpcm)
        if self.estimate_latent:
            Nq = self.wp @ post_
            tot_ = Nq.sum()
            m_ = float(Nq @ theta / tot_)
            lat = (m_, float(np.sqrt(max(Nq @ (theta - m_) ** 2 / tot_, 1e-4))))
        if self.slope_prior is not None:  # the EM ascends the log posterior
            ll_ += self.log_prior(e)
        return ll_, m_step(e.copy(), theta, r_, self.n_cat, self.is_gpcm, self.free, self.slope_prior), lat

    def run(self, eta, max_iter, tol, accelerate, progress):
        """Cycle until the largest change is below ``tol`` or ``max_iter`` cycles.

        Returns (eta, (mu, sd), history, converged, n_iter, per-item change of the last cycle).
        """
        history: list[float] = []
        converged = False
        item_change = np.full(eta.shape[0], np.inf)
        n_iter = 0
        lat = (0.0, 1.0)
        while n_iter < max_iter:
            n_iter += 1
            ll0, eta1, lat1 = self.cycle(eta, lat)
            history.append(ll0)
            d = np.abs(eta1 - eta)
            item_change = np.where(np.isfinite(d), d, 0.0).max(axis=1)
            max_change = max(float(item_change.max()), abs(lat1[0] - lat[0]), abs(lat1[1] - lat[1]))
            if progress is not None:
                progress(n_iter, ll0, max_change)
            if max_change < tol:
                eta, lat, converged = eta1, lat1, True
                break
            if not accelerate:
                eta, lat = eta1, lat1
                continue
            eta, lat = self._squarem(eta, lat, eta1, lat1, history)
        return eta, lat, history, converged, n_iter, item_change

    def _squarem(self, eta, lat, eta1, lat1, history):
        """One SQUAREM extrapolation from two EM steps, kept only if it does not lower the objective."""
        free, K = self.free, eta.shape[1]
        ll1, eta2, lat2 = self.cycle(eta1, lat1)
        x0 = np.concatenate([eta[free].ravel(), [lat[0], np.log(lat[1])]])
        x1 = np.concatenate([eta1[free].ravel(), [lat1[0], np.log(lat1[1])]])
        x2 = np.concatenate([eta2[free].ravel(), [lat2[0], np.log(lat2[1])]])
        rr, vv = x1 - x0, x2 - 2 * x1 + x0
        nv = np.linalg.norm(vv)
        alpha = min(-1.0, -np.linalg.norm(rr) / nv) if nv > 0 else -1.0
        xn = x0 - 2 * alpha * rr + alpha ** 2 * vv
        cand = eta.copy()
        cand[free] = xn[:-2].reshape(-1, K)
        cand_lat = (float(xn[-2]), float(np.exp(xn[-1])))
        if feasible(cand[free], self.n_cat[free], self.is_gpcm[free]).all() and np.isfinite(xn).all():
            ll_c, eta_c, lat_c = self.cycle(cand, cand_lat)  # stabilising EM step from the extrapolated point
            if ll_c >= ll1 - 1e-9 * abs(ll1):
                history.append(ll1)
                history.append(ll_c)
                return eta_c, lat_c
        history.append(ll1)
        return eta2, lat2


def e_step(ind, eta, theta, log_prior, wp, n_cat, is_gpcm):
    """Posterior over the nodes of every pattern and the expected category counts.

    Returns
    -------
    ll : float
        Marginal log-likelihood (weighted by ``wp``).
    post : ndarray, shape (U, Q)
        Posterior weights of each pattern on the nodes.
    r : ndarray, shape (n_items, Q, K)
        Expected counts of each category at each node.
    """
    I, K = eta.shape
    logP = logp_eta(eta, theta, n_cat, is_gpcm)  # (Q, I, K)
    logP = np.where(np.isfinite(logP), logP, LOG_FLOOR)
    L = ind.dot(logP.reshape(theta.shape[0], I * K).T)  # (U, Q)
    L += log_prior[None, :]
    mx = L.max(axis=1)
    post = np.exp(L - mx[:, None])
    tot = post.sum(axis=1)
    post /= tot[:, None]
    ll = float(wp @ (mx + np.log(tot)))
    r = ind.tdot(post * wp[:, None])  # (I*K, Q)
    r = np.transpose(np.asarray(r).reshape(I, K, theta.shape[0]), (0, 2, 1))  # (I, Q, K)
    return ll, post, r


def _objective(eta, theta, r, n_cat, is_gpcm, prior=None):
    """Expected complete-data log-likelihood (+ log slope prior) per item, shape (n_items,); r is (I, Q, K)."""
    logP = np.transpose(logp_eta(eta, theta, n_cat, is_gpcm), (1, 0, 2))
    logP = np.where(np.isfinite(logP), logP, LOG_FLOOR)
    return (r * logP).sum(axis=(1, 2)) + log_slope_prior(eta[:, 0], prior)[0]


def m_step(eta, theta, r, n_cat, is_gpcm, free, prior=None, n_newton=3, max_halving=20):
    """Fisher-scoring M-step, vectorised across items; returns the new eta.

    r : (I, Q, K) expected counts. Each accepted step increases the item's
    expected complete-data log-likelihood (generalized EM).
    """
    I, K = eta.shape
    pad = np.zeros((I, K), dtype=bool)
    pad[:, 1:] = ~(np.arange(1, K)[None, :] < n_cat[:, None])
    n_q = r.sum(axis=2)  # (I, Q)
    obj = _objective(eta, theta, r, n_cat, is_gpcm, prior)
    active = free.copy()
    for _ in range(n_newton):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        e = eta[idx]
        logP, J = probs_jac(e, theta, n_cat[idx], is_gpcm[idx])
        P = np.exp(logP)
        inv = np.where(P > 1e-300, 1.0 / np.maximum(P, 1e-300), 0.0)
        grad = np.einsum("iqk,iqkj->ij", r[idx] * inv, J)
        wJ = J * (n_q[idx][:, :, None] * inv)[..., None]
        info = np.einsum("iqkj,iqkl->ijl", wJ, J)
        if prior is not None:
            _, g1, h1 = log_slope_prior(e[:, 0], prior)
            grad[:, 0] += g1
            info[:, 0, 0] += h1
        pd = pad[idx]
        grad[pd] = 0.0
        diag = np.arange(K)
        info[:, diag, diag] += np.where(pd, 1.0, 1e-8 * (1.0 + np.abs(info[:, diag, diag])))
        try:
            step = np.linalg.solve(info, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = grad / np.maximum(np.abs(info[:, diag, diag]), 1e-8)
        step[pd] = 0.0
        big = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, 3.0 / np.maximum(big, 1e-300))[:, None]  # trust region
        t = np.ones(idx.size)
        accepted = np.zeros(idx.size, dtype=bool)
        new_e = e.copy()
        old_obj = obj[idx]
        for _h in range(max_halving):
            todo = ~accepted
            if not todo.any():
                break
            cand = e + t[:, None] * step
            feas = feasible(cand, n_cat[idx], is_gpcm[idx]) & todo
            cand_obj = np.full(idx.size, -np.inf)
            if feas.any():
                f = np.flatnonzero(feas)
                cand_obj[f] = _objective(cand[f], theta, r[idx[f]], n_cat[idx[f]], is_gpcm[idx[f]], prior)
            ok = feas & (cand_obj >= old_obj - 1e-10 * np.abs(old_obj))
            new_e[ok] = cand[ok]
            obj[idx[ok]] = cand_obj[ok]
            accepted |= ok
            t = np.where(accepted, t, t * 0.5)
        eta[idx] = new_e
        moved = np.abs(new_e - e).max(axis=1)
        active[idx[(moved < 1e-9) | ~accepted]] = False
    return eta

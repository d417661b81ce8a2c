r"""Joint (multidimensional) scoring of a battery: a multivariate normal prior over the domains.

Between-item multidimensional model: each item loads on its own domain, so the likelihood of a
sitting factorises over the domains, :math:`L(\boldsymbol\theta) = \prod_d L_d(\theta_d)`, and the
domains are tied only by the prior :math:`\boldsymbol\theta \sim N(\boldsymbol\mu, \Sigma)`,
:math:`\Sigma = \mathrm{diag}(\sigma)\,R\,\mathrm{diag}(\sigma)` with the battery's correlation matrix
:math:`R`. This is Segall's (1996) Bayesian multidimensional CAT with between-item structure
(Segall, D. O. (1996). Multidimensional adaptive testing. *Psychometrika*, 61, 331–354).

A joint grid is impossible for 7 domains (81⁷ nodes), so the posterior is computed by **expectation
propagation** with Gaussian messages (Minka, T. P. (2001). Expectation propagation for approximate
Bayesian inference. *UAI 2001*, 362–369; Rasmussen & Williams (2006), *Gaussian Processes for Machine
Learning*, §3.6, the same scheme for a Gaussian prior and factorised likelihoods):

* each domain's own factor :math:`f_d(\theta_d)` (its answers' likelihood, times the previous-sitting
  prior's tilt when that prior is used) is kept **exactly on the domain's grid**, and approximated for
  the *other* domains by a Gaussian site :math:`t_d(\theta_d) \propto \exp(-\tfrac12\tau_d\theta_d^2
  + \nu_d\theta_d)`;
* the *cavity* of domain :math:`d` is the marginal of :math:`N(\boldsymbol\mu,\Sigma)\prod_{e\ne d}
  t_e(\theta_e)` on :math:`\theta_d`: a normal :math:`N(m_d, v_d)`, computed by Gaussian conditioning
  on the pseudo-observations :math:`y_e = \nu_e/\tau_e` with noise variance :math:`1/\tau_e`
  (:func:`cavity`);
* domain :math:`d`'s posterior is the cavity times :math:`f_d` on its grid (the ordinary grid
  posterior of :mod:`cat_prom.grid`, with the cavity as its prior); its mean and variance
  :math:`(\hat m_d, \hat v_d)` give the new site by moment matching, :math:`\tau_d = 1/\hat v_d -
  1/v_d`, :math:`\nu_d = \hat m_d/\hat v_d - m_d/v_d` (:func:`site`);
* sweeps over the domains repeat until the sites stop changing.

The domain's reported θ̂ and SE are the mean and SD of its grid posterior at convergence. Every
factor of the GRM/GPCM is log-concave, so :math:`\hat v_d \le v_d` and :math:`\tau_d \ge 0`; where
a non-log-concave factor (the previous-sitting mixture prior) makes it negative the site is dropped
(the domain then lends nothing to the others), which is conservative. With one domain, or a domain
uncorrelated with every other, the cavity is the domain's own prior exactly and the posterior is
today's single-domain CAT bit for bit.

Item selection (Segall, 1996): the next item maximises the determinant of the joint posterior
precision after it is given (D-optimality). With the Gaussian approximation :math:`P = \Sigma^{-1} +
\mathrm{diag}(\tau)` and an item of domain :math:`d` with Fisher information :math:`I` at
:math:`\hat\theta_d`, :math:`\det(P + I e_d e_d^\top) = \det P\,(1 + I\,C_{dd})`, :math:`C = P^{-1}`
(matrix determinant lemma), so the gain is :func:`d_optimal_gain`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import InvalidBatteryError

__all__ = ["check_correlation", "covariance", "cavity", "cavities", "site", "posterior_covariance", "d_optimal_gain"]

_SYM_TOL = 1e-9


def check_correlation(matrix, n: int, *, field: str = "correlation.matrix") -> np.ndarray:
    """A correlation matrix of ``n`` domains as a float array: square, symmetric, unit diagonal, entries in
    [-1, 1], positive definite. Raises :class:`~cat_prom.errors.InvalidBatteryError` saying which."""
    try:
        R = np.array(matrix, dtype=float)
    except (TypeError, ValueError):
        raise InvalidBatteryError(f"{field}: must be a list of {n} lists of {n} numbers", field=field) from None
    if R.shape != (n, n):
        raise InvalidBatteryError(f"{field}: must be {n} x {n} (one row and column per bank), got shape {R.shape}",
                                  field=field)
    if not np.isfinite(R).all():
        raise InvalidBatteryError(f"{field}: entries must be finite numbers", field=field)
    if not np.allclose(R, R.T, rtol=0, atol=_SYM_TOL):
        i, j = np.argwhere(np.abs(R - R.T) > _SYM_TOL)[0]
        raise InvalidBatteryError(f"{field}: must be symmetric; [{i}][{j}] = {R[i, j]!r} but [{j}][{i}] = "
                                  f"{R[j, i]!r}", field=field)
    if not (np.diag(R) == 1.0).all():
        i = int(np.flatnonzero(np.diag(R) != 1.0)[0])
        raise InvalidBatteryError(f"{field}: the diagonal must be 1 (a correlation matrix); [{i}][{i}] = {R[i, i]!r}",
                                  field=field)
    if (np.abs(R) > 1).any():
        raise InvalidBatteryError(f"{field}: correlations must lie in [-1, 1]", field=field)
    try:
        np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        raise InvalidBatteryError(f"{field}: must be positive definite (smallest eigenvalue "
                                  f"{np.linalg.eigvalsh(R).min():.3g}); correlations that cannot all hold at once",
                                  field=field) from None
    R = (R + R.T) / 2
    R.flags.writeable = False
    return R


def covariance(sd: Sequence[float], R: np.ndarray) -> np.ndarray:
    r"""Prior covariance :math:`\Sigma = \mathrm{diag}(\sigma) R\, \mathrm{diag}(\sigma)`, shape (D, D)."""
    sd = np.asarray(sd, dtype=float)
    return R * sd[:, None] * sd[None, :]


def cavity(mu: np.ndarray, Sigma: np.ndarray, tau: np.ndarray, nu: np.ndarray, d: int) -> tuple[float, float]:
    r"""Mean and variance of domain ``d``'s cavity: the prior conditioned on the other domains' sites.

    Sites with :math:`\tau_e > 0` act as observations :math:`y_e = \nu_e/\tau_e` of :math:`\theta_e`
    with noise variance :math:`1/\tau_e`; with :math:`O` those domains, :math:`K = \Sigma_{OO} +
    \mathrm{diag}(1/\tau_O)`,

    .. math::

        m_d = \mu_d + \Sigma_{dO} K^{-1} (y_O - \mu_O),\qquad
        v_d = \Sigma_{dd} - \Sigma_{dO} K^{-1} \Sigma_{Od}.

    With no such site (or none correlated with ``d``) it is the prior :math:`(\mu_d, \Sigma_{dd})`
    exactly (no arithmetic is done on it).
    """
    O = [e for e in range(mu.shape[0]) if e != d and tau[e] > 0 and Sigma[d, e] != 0]
    if not O:
        return float(mu[d]), float(Sigma[d, d])
    # domains uncorrelated with d still condition the others: use every site but d's
    O = [e for e in range(mu.shape[0]) if e != d and tau[e] > 0]
    K = Sigma[np.ix_(O, O)] + np.diag(1.0 / tau[O])
    k = Sigma[d, O]
    y = nu[O] / tau[O] - mu[O]
    sol = np.linalg.solve(K, np.column_stack([y, k]))
    return float(mu[d] + k @ sol[:, 0]), float(Sigma[d, d] - k @ sol[:, 1])


def cavities(mu: np.ndarray, Sigma: np.ndarray, tau: np.ndarray, nu: np.ndarray) -> tuple[list, list]:
    r"""Every domain's cavity at once, from the Gaussian approximation of the joint posterior (one solve).

    With :math:`C` (:func:`posterior_covariance`) and the approximate posterior mean :math:`\bar m`,
    removing domain :math:`d`'s own site gives :math:`1/v_d = 1/C_{dd} - \tau_d` and
    :math:`m_d = v_d(\bar m_d / C_{dd} - \nu_d)` — the same cavity as :func:`cavity`, up to rounding.
    A domain that no other domain's site is correlated with gets its prior exactly, as in :func:`cavity`.
    Returns two lists of D Python floats (means, variances).
    """
    D = mu.shape[0]
    O = np.flatnonzero(tau > 0)
    means, variances = mu.tolist(), np.diag(Sigma).tolist()
    if O.shape[0] == 0:
        return means, variances
    K = Sigma[np.ix_(O, O)] + np.diag(1.0 / tau[O])
    S_O = Sigma[:, O]
    sol = np.linalg.solve(K, np.column_stack([nu[O] / tau[O] - mu[O], S_O.T]))
    m_bar = mu + S_O @ sol[:, 0]
    C = Sigma - S_O @ sol[:, 1:]
    has = tau > 0
    for d in range(D):
        others = has.copy()
        others[d] = False
        if not (Sigma[d, others] != 0).any():
            continue  # prior exactly
        cdd = float(C[d, d])
        if has[d]:
            v = 1.0 / (1.0 / cdd - float(tau[d]))
            means[d], variances[d] = v * (float(m_bar[d]) / cdd - float(nu[d])), v
        else:
            means[d], variances[d] = float(m_bar[d]), cdd
    return means, variances


def site(mean: float, var: float, cav_mean: float, cav_var: float) -> tuple[float, float]:
    r"""Gaussian site :math:`(\tau, \nu)` that turns the cavity :math:`N(m, v)` into a posterior with the
    given mean and variance: :math:`\tau = 1/\hat v - 1/v`, :math:`\nu = \hat m/\hat v - m/v`;
    ``(0, 0)`` (no site) when :math:`\tau \le 0` or the variance is 0."""
    if not var > 0:
        return 0.0, 0.0
    tau = 1.0 / var - 1.0 / cav_var
    if not tau > 0 or not math.isfinite(tau):
        return 0.0, 0.0
    return tau, mean / var - cav_mean / cav_var


def posterior_covariance(Sigma: np.ndarray, tau: np.ndarray) -> np.ndarray:
    r"""Covariance of the Gaussian approximation of the joint posterior, :math:`(\Sigma^{-1} +
    \mathrm{diag}(\tau))^{-1}`, computed as :math:`\Sigma - \Sigma (\Sigma + T^{-1})^{-1} \Sigma` over the
    domains with a site (no inverse of :math:`\Sigma` needed). Shape (D, D)."""
    O = np.flatnonzero(tau > 0)
    if O.shape[0] == 0:
        return Sigma.copy()
    K = Sigma[np.ix_(O, O)] + np.diag(1.0 / tau[O])
    S_O = Sigma[:, O]
    return Sigma - S_O @ np.linalg.solve(K, S_O.T)


def d_optimal_gain(C: np.ndarray, d: int, info: float) -> float:
    r"""Log-determinant gain of the joint posterior precision from an item of domain ``d`` with Fisher
    information ``info`` at :math:`\hat\theta_d`: :math:`\log\det(P + I e_d e_d^\top) - \log\det P =
    \log(1 + I\,C_{dd})` (matrix determinant lemma; :math:`C = P^{-1}`, :func:`posterior_covariance`)."""
    return math.log1p(info * float(C[d, d]))

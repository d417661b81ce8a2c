r"""Standard errors of the item parameters from the cross-product of person scores (XPD).

For each response pattern :math:`u` the score vector of the item parameters is
the posterior expectation of the complete-data score,

.. math::

    g_u = \sum_q \pi(\theta_q \mid u)\, \sum_i \frac{\partial \log P_{i x_{ui}}(\theta_q)}{\partial \eta_i},

and the information is estimated by :math:`\sum_u w_u\, g_u g_u^{\mathsf T}` (the
"XPD" or empirical cross-product information; adequate for reporting, slightly
liberal). Standard errors of the slopes come from the diagonal of its
pseudo-inverse; those of the thresholds by the delta method from the
slope-intercept form (:mod:`cat_prom.calibration.model`).

The score of every pattern is one matrix product per block of patterns:
``post (n, Q) @ dlogP (Q, n_items * K * n_par)`` gives the expected score for
each item and category, from which each pattern's observed category is taken.
"""
from __future__ import annotations

import numpy as np

from .model import probs_jac

__all__ = ["xpd_standard_errors"]

_BLOCK_FLOATS = 4_000_000  # floats per block of expected scores (32 MB)


def xpd_standard_errors(pat, wp, post, eta, theta, n_cat, is_gpcm, free):
    """SE of slopes and thresholds of the free items.

    Parameters
    ----------
    pat : ndarray of int, shape (U, n_items)
        Distinct response patterns (-1 = not answered).
    wp : ndarray, shape (U,)
        Pattern weights.
    post : ndarray, shape (U, Q)
        Posterior weights of each pattern on the nodes ``theta``.
    eta : ndarray, shape (n_items, K)
        Slope-intercept parameters at the estimate.
    n_cat, is_gpcm, free : ndarray, shape (n_items,)

    Returns
    -------
    se_a : ndarray, shape (n_items,)
    se_b : ndarray, shape (n_items, K - 1)
        NaN for fixed items and padded categories.
    """
    I, K = eta.shape
    npar = K
    Q = theta.shape[0]
    logP, J = probs_jac(eta, theta, n_cat, is_gpcm)  # (I, Q, K), (I, Q, K, npar)
    P = np.exp(logP)
    D = J * np.where(P > 1e-300, 1.0 / np.maximum(P, 1e-300), 0.0)[..., None]  # dlogP/deta
    Dm = np.ascontiguousarray(D.transpose(1, 0, 2, 3).reshape(Q, I * K * npar))
    pad = ~(np.arange(1, K)[None, :] < n_cat[:, None])
    par_mask = np.concatenate([np.ones((I, 1), bool), ~pad], axis=1) & free[:, None]  # (I, npar)
    sel = np.flatnonzero(par_mask.ravel())  # estimated parameters, item-major
    info = np.zeros((sel.size, sel.size))
    U = pat.shape[0]
    block = max(1, _BLOCK_FLOATS // (I * K * npar))
    for s in range(0, U, block):
        x = pat[s:s + block]
        expected = (post[s:s + block] @ Dm).reshape(x.shape[0], I, K, npar)
        G = np.take_along_axis(expected, np.maximum(x, 0)[:, :, None, None], axis=2)[:, :, 0, :]
        G[x < 0] = 0.0
        Gs = G.reshape(x.shape[0], I * npar)[:, sel]
        info += (Gs * wp[s:s + block, None]).T @ Gs
    try:
        cov = np.linalg.pinv(info)
    except np.linalg.LinAlgError:  # pragma: no cover
        return None, None
    pos = np.full(I * npar, -1)
    pos[sel] = np.arange(sel.size)
    pos = pos.reshape(I, npar)
    se_a = np.full(I, np.nan)
    se_a[free] = np.sqrt(cov[pos[free, 0], pos[free, 0]])
    se_b = np.full((I, K - 1), np.nan)
    for i in np.flatnonzero(free):  # delta method, per item (small)
        k_i = int(n_cat[i])
        idx = pos[i, :k_i]
        C = cov[np.ix_(idx, idx)]
        a = eta[i, 0]
        d = eta[i, 1:k_i]
        for k in range(k_i - 1):
            g = np.zeros(k_i)
            if is_gpcm[i]:
                prev = d[k - 1] if k > 0 else 0.0
                g[0] = (d[k] - prev) / a ** 2
                g[k + 1] = -1.0 / a
                if k > 0:
                    g[k] = 1.0 / a
            else:
                g[0] = d[k] / a ** 2
                g[k + 1] = -1.0 / a
            se_b[i, k] = np.sqrt(max(g @ C @ g, 0.0))
    return se_a, se_b

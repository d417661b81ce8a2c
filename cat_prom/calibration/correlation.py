r"""Correlation between the latent traits of several banks, from joint response data.

The joint (multidimensional) battery (:mod:`cat_prom.joint`) needs the correlation matrix of the
domains' θ. :func:`estimate_correlation` estimates it from people who answered items of every bank
(a joint calibration sample) by **Spearman's correction for attenuation applied to EAP scores**:

1. score each bank separately by EAP with the bank's N(0, 1) metric prior
   (:func:`cat_prom.scoring.eap`), giving :math:`\hat\theta_{di}` and posterior SDs :math:`s_{di}`;
2. the EAP's empirical reliability is :math:`\rho_d = \mathrm{Var}(\hat\theta_d) /
   (\mathrm{Var}(\hat\theta_d) + \overline{s_d^2})` (the share of the trait's variance the EAPs carry;
   e.g. du Toit, 2003, *IRT from SSI*, p. 34; Brown & Croudace, 2015, "Scoring and estimating score
   precision using multidimensional IRT models", in *Handbook of Item Response Theory Modeling*);
3. the observed correlation of EAPs is attenuated by the shrinkage of each: under a normal model
   :math:`\hat\theta_d \approx \rho_d\,\theta_d + e_d`, so :math:`r(\hat\theta_d, \hat\theta_e)
   \approx \sqrt{\rho_d\rho_e}\; r(\theta_d, \theta_e)`, and the estimate is
   :math:`\hat r_{de} = r(\hat\theta_d, \hat\theta_e) / \sqrt{\rho_d \rho_e}` (Spearman, C. (1904).
   The proof and measurement of association between two things. *American Journal of Psychology*,
   15, 72–101).
4. if the corrected matrix is not positive definite (or an entry leaves [-1, 1]) it is replaced by
   the nearest correlation matrix by eigenvalue clipping (Higham, N. J. (2002). Computing the nearest
   correlation matrix. *IMA Journal of Numerical Analysis*, 22, 329–343, one projection step) and
   ``adjusted`` says so.

The correction is exact for normal θ and a linear (normal-ogive, many-item) likelihood and good when
every bank's EAP reliability is high (> 0.8); with short banks it is approximate — checked on
simulated data with a known matrix in ``tests/core/test_joint.py``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import scoring
from ..errors import InvalidDataError

__all__ = ["estimate_correlation"]


def estimate_correlation(responses: Sequence[np.ndarray], banks: Sequence) -> dict:
    """Correlation of the banks' θ from joint responses (method in the module docstring).

    Parameters
    ----------
    responses : sequence of ndarray, each (n_persons, n_items of that bank)
        0-based categories, NaN (or -1) where not answered; the same persons, in the same row order,
        in every array.
    banks : sequence of ItemBank (or parameters accepted by :func:`cat_prom.scoring.eap`)

    Returns
    -------
    dict with ``matrix`` (D, D) list of lists, ``reliability`` (D,) EAP reliabilities, ``observed``
    (D, D) correlations of the EAPs, ``n`` persons and ``adjusted`` (bool).
    """
    if len(responses) != len(banks) or len(banks) < 2:
        raise InvalidDataError("estimate_correlation needs one response matrix per bank, for at least two banks")
    n = {np.asarray(x).shape[0] for x in responses}
    if len(n) != 1:
        raise InvalidDataError(f"every response matrix needs the same persons (rows); got row counts {sorted(n)}")
    n = n.pop()
    if n < 10:
        raise InvalidDataError(f"estimate_correlation needs at least 10 persons, got {n}")
    th, rel = [], []
    for X, bank in zip(responses, banks):
        X = np.asarray(X, dtype=float)
        X = np.where(X < 0, np.nan, X)
        params = getattr(bank, "params", bank)
        res = scoring.eap(X, params)
        v = float(np.var(res.theta))
        th.append(res.theta)
        rel.append(v / (v + float(np.mean(res.se ** 2))))
    rel = np.array(rel)
    obs = np.corrcoef(np.array(th))
    R = obs / np.sqrt(np.outer(rel, rel))
    np.fill_diagonal(R, 1.0)
    adjusted = False
    w, V = np.linalg.eigh(R)
    if w.min() < 1e-6 or np.abs(R).max() > 1:
        adjusted = True
        R = (V * np.maximum(w, 1e-6)) @ V.T
        d = np.sqrt(np.diag(R))
        R = R / np.outer(d, d)
        np.fill_diagonal(R, 1.0)
    R = (R + R.T) / 2
    return {"matrix": R.tolist(), "reliability": rel.tolist(), "observed": obs.tolist(), "n": int(n),
            "adjusted": adjusted}

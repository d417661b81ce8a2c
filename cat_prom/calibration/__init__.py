r"""Item calibration: the researcher's toolkit.

Marginal maximum likelihood (MML) estimation of graded-response (GRM) and
generalized-partial-credit (GPCM) item parameters by the EM algorithm of
Bock and Aitkin (1981), item fit (S-X², Orlando and Thissen 2000), marginal
reliability, scale linking (mean-sigma, Stocking-Lord) and fixed-anchor
calibration, plus a response simulator.

Model and metric
----------------
Everything uses the conventions of :mod:`cat_prom.irt`: slope :math:`a`,
thresholds :math:`b_1 < \dots < b_{K-1}` (GRM) or step parameters (GPCM),
scaling constant D = 1, categories 0-based. Internally the EM works in the
slope-intercept form

.. math::

    \text{GRM:}\quad P^*_k(\theta) = \sigma(a\theta + d_k),\qquad d_k = -a b_k,

    \text{GPCM:}\quad P_k(\theta) \propto \exp(k a\theta + c_k),\qquad
    c_k = -a \sum_{v \le k} b_v,

in which the complete-data log-likelihood of one item is concave (Pratt,
1981), so Fisher scoring with step halving is monotone.

Missing data
------------
Missing responses (NaN or -1) simply leave the item out of that person's
likelihood (full-information MML). This is the correct likelihood whenever
the missingness depends only on observed answers (missing at random), which
is exactly how a CAT decides what to ask next (Mislevy and Wu, 1996). It is
*not* what ``girth`` does: its GRM estimator solves for thresholds from the
observed marginal proportions of each item, which are biased when who-answers
depends on ability; see :func:`girth_grm` and ``benchmarks/calibration.py``.

Only :mod:`~cat_prom.calibration.girth_ref` imports ``girth``; girth wants
``(n_items, n_persons)`` arrays with missing coded as ``girth.INVALID_RESPONSE``
and the transposition happens at that boundary.

Layout
------
=================  ===========================================================
``em``             :func:`calibrate`: E-step, M-step, SQUAREM-accelerated EM
``prepare``        anchors, category checks and collapsing, patterns, starts
``model``          the slope-intercept form, shared input checks, quadrature
``se``             standard errors (cross-product of person scores)
``results``        :class:`CalibrationResult` and its parts
``fit``            S-X² item fit, test information, marginal reliability
``linking``        mean-sigma and Stocking-Lord linking
``simulate``       :func:`simulate_responses`
``girth_ref``      :func:`girth_grm`, girth as a second opinion
``workflow``       :func:`calibrate_bank` and :func:`link_bank`: data to bank
=================  ===========================================================

References
----------
Bock, R. D., & Aitkin, M. (1981). Marginal maximum likelihood estimation of
item parameters: application of an EM algorithm. *Psychometrika*, 46, 443-459.

Samejima, F. (1969). Estimation of latent ability using a response pattern of
graded scores. *Psychometrika Monograph Supplement*, 17.

Muraki, E. (1992). A generalized partial credit model: application of an EM
algorithm. *Applied Psychological Measurement*, 16, 159-176.

Orlando, M., & Thissen, D. (2000). Likelihood-based item-fit indices for
dichotomous item response theory models. *Applied Psychological Measurement*,
24, 50-64. Kang, T., & Chen, T. T. (2008). Performance of the generalized
S-X² item fit index for polytomous IRT models. *Journal of Educational
Measurement*, 45, 391-406.

Lord, F. M., & Wingersky, M. S. (1984). Comparison of IRT true-score and
equipercentile observed-score "equatings". *Applied Psychological
Measurement*, 8, 453-461.

Marco, G. L. (1977). Item characteristic curve solutions to three intractable
testing problems. *Journal of Educational Measurement*, 14, 139-160.
Stocking, M. L., & Lord, F. M. (1983). Developing a common metric in item
response theory. *Applied Psychological Measurement*, 7, 201-210.

Kim, S. (2006). A comparative study of IRT fixed parameter calibration
methods. *Journal of Educational Measurement*, 43, 355-381.

Green, B. F., Bock, R. D., Humphreys, L. G., Linn, R. L., & Reckase, M. D.
(1984). Technical guidelines for assessing computerized adaptive tests.
*Journal of Educational Measurement*, 21, 347-360.
"""
from __future__ import annotations

from .em import ProgressCallback, calibrate
from .fit import ItemFitResult, item_fit_sx2, marginal_reliability, test_information
from .girth_ref import girth_grm
from .linking import LinkingResult, link_mean_sigma, link_stocking_lord, transform_params
from .model import quadrature
from .results import CalibrationResult, CategoryCollapse, ItemIssue, SparseCategory
from .simulate import simulate_responses
from .workflow import CalibrationDetails, calibrate_bank, link_bank

__all__ = [
    "CalibrationResult",
    "ItemIssue",
    "SparseCategory",
    "CategoryCollapse",
    "LinkingResult",
    "ItemFitResult",
    "CalibrationDetails",
    "ProgressCallback",
    "quadrature",
    "calibrate",
    "calibrate_bank",
    "link_bank",
    "simulate_responses",
    "test_information",
    "marginal_reliability",
    "item_fit_sx2",
    "link_mean_sigma",
    "link_stocking_lord",
    "transform_params",
    "girth_grm",
]

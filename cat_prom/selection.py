r"""Item selection criteria, exposure control and content balancing.

Each criterion returns one score per item (higher is better), computed from
the bank's precomputed :class:`~cat_prom.bank.GridTables`:

* **MFI** — maximum Fisher information at :math:`\hat\theta` (Lord, 1980), read by
  linear interpolation from information tabulated on a 0.01-step grid.
* **MPWI** — maximum posterior-weighted information,
  :math:`\int I_i(\theta)\,\pi(\theta\mid x)\,d\theta` (van der Linden, 1998):
  one matrix–vector product ``posterior @ info``.
* **KL** — posterior-weighted Kullback–Leibler information (Chang & Ying, 1996;
  catR's ``"KLP"``): :math:`\sum_q \pi_q \sum_k P_{ik}(\hat\theta)\log\frac{P_{ik}(\hat\theta)}{P_{ik}(\theta_q)}`.
* **MEPV** — minimum expected posterior variance (van der Linden & Pashley, 2010):
  :math:`\sum_k P(X_i = k\mid x)\operatorname{Var}(\theta\mid x, X_i = k)`; scored as its negative.
* **random** — uniform among eligible items.

Exposure control: *randomesque* (Kingsbury & Zara, 1989) picks at random
among the k best eligible items; *Sympson–Hetter* (1985) walks down the
ranking and administers item i with probability ``exposure_k[i]``, an item
passed over being withdrawn for the rest of the sitting.

Content balancing (Kingsbury & Zara, 1989): restrict the choice to items of
the content tag whose share of the items given so far falls furthest below
its target proportion.
"""
from __future__ import annotations

import numpy as np

from .bank import GridTables

__all__ = ["criterion", "mfi", "mpwi", "kl", "mepv", "choose"]


def mfi(tables: GridTables, theta_hat: float, posterior=None) -> np.ndarray:
    """Fisher information of every item at ``theta_hat``; shape (n_items,)."""
    return tables.info_at(theta_hat)


def mpwi(tables: GridTables, theta_hat: float, posterior: np.ndarray) -> np.ndarray:
    """Posterior-weighted information; ``posterior`` is (n_q,) normalised weights."""
    return posterior @ tables.info


def kl(tables: GridTables, theta_hat: float, posterior: np.ndarray) -> np.ndarray:
    """Posterior-weighted Kullback–Leibler information at ``theta_hat``; shape (n_items,)."""
    # P and log P at theta_hat exactly (one evaluation of the model), as catR's KLP does
    lp_hat = np.maximum(tables.log_p_at(theta_hat), -745.0)  # (N, K)
    p_hat = np.where(tables.valid, np.exp(lp_hat), 0.0)
    expected_lp = np.tensordot(posterior, tables.log_p_finite, axes=(0, 0))  # (N, K)
    return (p_hat * (lp_hat - expected_lp)).sum(axis=1)


def mepv(tables: GridTables, theta_hat: float, posterior: np.ndarray) -> np.ndarray:
    """Negative expected posterior variance after answering each item; shape (n_items,)."""
    th = tables.theta
    m0 = posterior @ tables.p_flat
    m1 = (posterior * th) @ tables.p_flat
    m2 = (posterior * tables.theta_sq) @ tables.p_flat
    with np.errstate(divide="ignore", invalid="ignore"):
        epv = np.where(m0 > 1e-300, m2 - m1 * m1 / np.where(m0 > 1e-300, m0, 1.0), 0.0)
    n = tables.info.shape[1]
    return -epv.reshape(n, -1).sum(axis=1)


CRITERIA = {"mfi": mfi, "mpwi": mpwi, "kl": kl, "mepv": mepv}


def criterion(name: str, tables: GridTables, theta_hat: float, posterior) -> np.ndarray:
    """Score every item under criterion ``name`` (higher is better)."""
    return CRITERIA[name](tables, theta_hat, posterior)


def choose(scores: np.ndarray, eligible: np.ndarray, rng: np.random.Generator, *, method: str = "none",
           k: int = 5, exposure_k: np.ndarray | None = None, withdrawn: np.ndarray | None = None) -> int:
    """Pick one eligible item index from criterion ``scores``.

    Parameters
    ----------
    scores : (n_items,) criterion values, higher is better
    eligible : (n_items,) bool
    method : 'none' (argmax), 'random', 'randomesque' or 'sympson_hetter'
    withdrawn : (n_items,) bool, updated in place by Sympson–Hetter for items passed over

    Returns
    -------
    int, or -1 when no item is eligible.
    """
    idx = np.flatnonzero(eligible)
    if idx.size == 0:
        return -1
    if method == "random":
        return int(idx[rng.integers(idx.size)])
    s = scores[idx]
    if method == "none":
        return int(idx[np.argmax(s)])
    if method == "randomesque":
        kk = min(k, idx.size)
        top = idx[np.argpartition(-s, kk - 1)[:kk]] if kk < idx.size else idx
        return int(top[rng.integers(top.size)])
    if method == "sympson_hetter":
        order = idx[np.argsort(-s, kind="stable")]
        for j in order:
            if rng.random() <= exposure_k[j]:
                return int(j)
            if withdrawn is not None:
                withdrawn[j] = True
        return int(order[-1])  # every item passed over: give the last one rather than none
    raise ValueError(f"unknown selection method {method!r}")

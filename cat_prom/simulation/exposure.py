"""Sympson–Hetter exposure parameters, derived by iterated simulation.

References
----------
Sympson, J. B., & Hetter, R. D. (1985). Controlling item-exposure rates in
computerized adaptive testing. *Proceedings of the 27th Annual Meeting of the
Military Testing Association*, 973–977.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..bank import ItemBank
from ..design import Design
from ..errors import InvalidDesignError
from .responders import model_responder
from .run import check_theta, run_cats

__all__ = ["sympson_hetter"]


def sympson_hetter(bank: ItemBank, design: Design | Mapping | None = None, *, n: int = 5000,
                   r_max: float = 0.2, iterations: int = 20, seed: int | None = None, tol: float = 0.01,
                   theta=None, full_output: bool = False):
    r"""Derive Sympson–Hetter exposure parameters by iterated simulation.

    The classic procedure (Sympson & Hetter, 1985): start with
    :math:`k_i = 1`; simulate ``n`` CATs under the design with Sympson–Hetter
    exposure control; from the proportion of simulees for whom item *i* was
    *selected* (came up in the ranking, administered or passed over),
    :math:`P(S_i)`, set :math:`k_i = r_{max}/P(S_i)` when :math:`P(S_i) > r_{max}`
    and :math:`k_i = 1` otherwise; repeat until the largest administration
    rate :math:`P(A_i) = P(S_i) k_i` is at most ``r_max + tol`` (or
    ``iterations`` rounds). The same true θ sample is used in every round.

    A fixed start item (the bank's ``start_item`` with ``start: auto|bank``) is
    given to everyone and cannot be controlled; use ``start: max_info``.

    Parameters
    ----------
    bank, design : as for :func:`simulate` (the exposure method is forced to Sympson–Hetter)
    n : int
        Simulees per round, drawn from the design's prior (or ``theta``).
    r_max : float in (0, 1]
        Target maximum exposure rate.
    iterations : int
        Maximum number of rounds.
    full_output : bool
        Also return a dict with the per-round history (max exposure, k).

    Returns
    -------
    ItemBank
        ``bank.with_exposure(k)``; with ``full_output``, ``(bank, info)``.
    """
    if not 0 < r_max <= 1:
        raise InvalidDesignError(f"r_max must be in (0, 1], got {r_max}", field="r_max")
    if not isinstance(design, Design):
        design = Design.from_dict(design)
    design = design.merged({"exposure": {"method": "sympson_hetter"}})
    ss = np.random.SeedSequence(seed)
    theta_rng, *round_seqs = (np.random.default_rng(s) for s in ss.spawn(iterations + 1))
    if theta is None:
        theta = theta_rng.normal(design.prior["mean"], design.prior["sd"], size=int(n))
    theta = check_theta(theta, None)
    S = theta.shape[0]
    k = np.ones(bank.n_items)
    history = []
    tables = bank.grid(design.grid_theta())
    best = None
    for it in range(iterations):
        rng = round_seqs[it]
        res = run_cats(bank, design, S, model_responder(bank, theta, rng), rng, tables=tables, track=True,
                       exposure_k=k)
        ps = res["selected"] / S
        used = res["items"][res["items"] >= 0]
        pa = np.bincount(used, minlength=bank.n_items) / S
        history.append({"iteration": it + 1, "max_exposure": float(pa.max()),
                        "max_selection": float(ps.max()), "mean_length": float(res["n_items"].mean())})
        if best is None or pa.max() < best[0]:
            best = (float(pa.max()), k.copy())
        if pa.max() <= r_max + tol:
            break
        k = np.where(ps > r_max, r_max / np.maximum(ps, 1e-12), 1.0)
        k = np.clip(k, 1e-6, 1.0)
    out_bank = bank.with_exposure(best[1])
    if full_output:
        return out_bank, {"history": history, "max_exposure": best[0], "exposure_k": best[1].tolist()}
    return out_bank

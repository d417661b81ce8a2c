r"""Longitudinal simulation of a battery: a cohort answering several sittings under several designs.

A clinic deciding whether to turn on the previous-sitting prior (:mod:`cat_prom.priors`) and joint
scoring (:mod:`cat_prom.joint`) wants to know what they buy (fewer questions) and what they risk
(bias, a flare seen late). :func:`run_cohort` runs every simulee of a cohort through every sitting
of a battery, each sitting a real :class:`~cat_prom.session.Battery` or
:class:`~cat_prom.joint_battery.JointBattery` driven answer by answer exactly as the service drives
it, the previous sitting's θ̂ and SE passed to the next; answers come from the banks' own models at
the simulee's true θ of that sitting. :func:`summarise` turns the runs into the figures of
``benchmarks/results/longitudinal_burden.md``.

Designs (:data:`DESIGNS`): ``today`` (the battery file as it is, scored separately), ``previous``
(+ previous-sitting prior in every domain), ``joint`` (+ joint scoring), ``both``.

Reliable change at a sitting (Jacobson & Truax, 1991, with each sitting's own SE): :math:`|\Delta T|
> 1.96\,\sqrt{SE_1^2 + SE_2^2}`, :math:`\Delta T` between consecutive sittings, T units.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..calibration import simulate_responses
from ..design import PREVIOUS_PRIOR_DEFAULTS

__all__ = ["DESIGNS", "design_options", "run_cohort", "summarise", "RELIABLE_Z"]

DESIGNS = ("today", "previous", "joint", "both")
RELIABLE_Z = 1.96


def design_options(name: str, battery, *, prior: Mapping[str, Any] | None = None,
                   min_items: int | None = None) -> dict:
    """Keyword arguments of :meth:`BatteryDef.start` for a named design.

    ``prior`` overrides the previous-sitting prior's parameters (``drift_sd_per_week``,
    ``mixture_weight``); ``min_items`` (when given) replaces every domain's ``min_items`` in the
    designs that use the new information (``previous``, ``joint``, ``both``).
    """
    if name not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {name!r}")
    designs: dict[str, dict] = {b: {} for b in battery.banks}
    if name in ("previous", "both"):
        p = {"type": "previous", **PREVIOUS_PRIOR_DEFAULTS, **dict(prior or {})}
        for b in battery.banks:
            base = dict(battery.design(b).get("prior") or {})
            designs[b]["prior"] = {**{k: v for k, v in base.items() if k in ("mean", "sd")}, **p}
    if name != "today" and min_items is not None:
        for b in battery.banks:
            d = battery.design(b)
            designs[b]["min_items"] = min(min_items, d.get("max_items", 12))
    return {"scoring": "joint" if name in ("joint", "both") else "separate",
            "designs": {b: d for b, d in designs.items() if d}}


def run_cohort(battery, banks: Mapping[str, Any], theta: np.ndarray, days: Sequence[float], options: dict, *,
               seed: int, progress: Callable[[int, int], Any] | None = None) -> dict:
    """Run every simulee through every sitting.

    Parameters
    ----------
    battery : BatteryDef
    banks : mapping bank id -> ItemBank
    theta : ndarray (n, T, D)
        True θ of each simulee at each sitting in each domain (battery bank order).
    days : sequence of float (T,)
        Day of each sitting (increasing).
    options : dict
        :func:`design_options` of one design.
    seed : int
        Answers and sessions are drawn from it (the same seed gives the same answers in every design).

    Returns
    -------
    dict of arrays (n, T, D): ``theta_hat``, ``se``, ``n_asked``; and ``prior_previous`` (n, T, D) bool.
    """
    n, T, D = theta.shape
    bank_list = [banks[b] for b in battery.banks]
    out = {"theta_hat": np.zeros((n, T, D)), "se": np.zeros((n, T, D)), "n_asked": np.zeros((n, T, D), dtype=int),
           "prior_previous": np.zeros((n, T, D), dtype=bool)}
    ss = np.random.SeedSequence(seed)
    answer_seq, session_seq = ss.spawn(2)
    rng = np.random.default_rng(answer_seq)
    # every answer every simulee would give to every item at every sitting, drawn up front
    answers = [[simulate_responses(theta[:, t, d], bank_list[d], rng) for d in range(D)] for t in range(T)]
    seeds = np.random.default_rng(session_seq).integers(0, 2 ** 62, size=(n, T))
    for i in range(n):
        previous: dict[str, dict] = {}
        for t in range(T):
            sit = battery.start(banks, seed=int(seeds[i, t]), previous=previous or None, **options)
            index = {s.bank.id: d for d, s in enumerate(sit.sessions)}
            while not sit.finished:
                item, bank = sit.current_item, sit.current_bank
                d = index[bank.id]
                sit.answer(item.id, item.values[answers[t][d][i, bank.index(item.id)]])
            previous = {}
            for d, s in enumerate(sit.sessions):
                out["theta_hat"][i, t, d], out["se"][i, t, d], out["n_asked"][i, t, d] = s.theta, s.se, s.n_asked
                out["prior_previous"][i, t, d] = s.uses_previous_prior
                if s.n_answered > 0 and t + 1 < T:
                    previous[s.bank.id] = {"theta": s.theta, "se": s.se, "elapsed_days": float(days[t + 1] - days[t])}
        if progress is not None:
            progress(i + 1, n)
    return out


def summarise(run: dict, theta: np.ndarray, groups: np.ndarray, banks: Sequence, *, flare_group: str,
              flare_sitting: int, flare_domain: int) -> dict:
    """Burden, precision and flare detection of one design's run.

    Returns a dict: ``questions`` (median, p90, mean over all sittings and over follow-up sittings),
    ``per_domain`` (RMSE and bias of T, per bank), ``flare`` (share of the flare group whose change in
    ``flare_domain`` is reliable at ``flare_sitting``, its T bias there, and the stable group's share of
    reliable changes at the same sitting: false alarms), all T units.
    """
    total = run["n_asked"].sum(axis=2)  # (n, T)
    t_sd = np.array([b.t_sd for b in banks])
    err = (run["theta_hat"] - theta) * t_sd  # (n, T, D) T units
    q = {"median": float(np.median(total)), "p90": float(np.percentile(total, 90)), "mean": float(total.mean()),
         "median_follow_up": float(np.median(total[:, 1:])), "p90_follow_up": float(np.percentile(total[:, 1:], 90)),
         "median_first": float(np.median(total[:, 0]))}
    per = [{"bank_id": b.id, "rmse_t": float(np.sqrt(np.mean(err[:, :, d] ** 2))), "bias_t": float(np.mean(err[:, :, d]))}
           for d, b in enumerate(banks)]
    T_hat = run["theta_hat"] * t_sd
    se_t = run["se"] * t_sd
    dT = T_hat[:, flare_sitting, flare_domain] - T_hat[:, flare_sitting - 1, flare_domain]
    se_d = np.sqrt(se_t[:, flare_sitting, flare_domain] ** 2 + se_t[:, flare_sitting - 1, flare_domain] ** 2)
    reliable = np.abs(dT) > RELIABLE_Z * se_d
    worse = reliable & (dT > 0)
    fl, st = groups == flare_group, groups == "stable"
    flare = {"n": int(fl.sum()), "reliable_worse_share": float(worse[fl].mean()) if fl.any() else None,
             "bias_t_at_flare": float(err[fl, flare_sitting, flare_domain].mean()) if fl.any() else None,
             "rmse_t_at_flare": float(np.sqrt(np.mean(err[fl, flare_sitting, flare_domain] ** 2))) if fl.any() else None,
             "stable_reliable_share": float(reliable[st].mean()) if st.any() else None}
    return {"questions": q, "per_domain": per, "flare": flare}

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
from ..clinical.change import is_reliable
from ..priors import estimate_drift_sd

__all__ = ["DESIGNS", "GROUPS", "design_options", "battery_cohort", "run_cohort", "summarise", "drift_estimates",
           "markdown"]

DESIGNS = ("today", "previous", "joint", "both")
GROUPS = ("stable", "worsening", "flare", "improving")
#: which domains a slow trend moves, by bank id (others do not trend); sleep half as much
_TREND_LOAD = {"pain-intensity": 1.0, "pain-interference": 1.0, "physical-function": 1.0, "sleep-disturbance": 0.5,
               "fatigue": 0.5}


def design_options(name: str, battery, *, prior: Mapping[str, Any] | None = None,
                   min_items: int | Mapping[str, int] | None = None) -> dict:
    """Keyword arguments of :meth:`BatteryDef.start` for a named design.

    ``prior`` overrides the previous-sitting prior's parameters (``drift_sd_per_week``,
    ``mixture_weight``, ...); ``min_items`` (when given: one number for every domain, or bank id ->
    number for some) replaces the domains' ``min_items`` in the designs that use the new information
    (``previous``, ``joint``, ``both``).
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
        per = min_items if isinstance(min_items, Mapping) else {b: min_items for b in battery.banks}
        for b, k in per.items():
            designs[b]["min_items"] = min(int(k), battery.design(b).get("max_items", 12))
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


def summarise(run: dict, theta: np.ndarray, groups: np.ndarray, banks: Sequence, *, flare_at: np.ndarray,
              flare_domain: int) -> dict:
    """Burden, precision and flare detection of one design's run.

    Returns a dict: ``questions`` (median, p90, mean over all sittings and over follow-up sittings),
    ``per_domain`` (RMSE and bias of T, per bank), ``flare`` (share of the flare group whose change in
    ``flare_domain`` is a reliable worsening at its flare sitting ``flare_at`` (n,), its T bias and RMSE
    there, and the stable group's share of reliable changes in that domain over its follow-up sittings:
    false alarms), all T units.
    """
    total = run["n_asked"].sum(axis=2)  # (n, T)
    t_sd = np.array([b.t_sd for b in banks])
    err = (run["theta_hat"] - theta) * t_sd  # (n, T, D) T units
    q = {"median": float(np.median(total)), "p90": float(np.percentile(total, 90)), "mean": float(total.mean()),
         "median_follow_up": float(np.median(total[:, 1:])), "p90_follow_up": float(np.percentile(total[:, 1:], 90)),
         "median_first": float(np.median(total[:, 0]))}
    per = [{"bank_id": b.id, "rmse_t": float(np.sqrt(np.mean(err[:, :, d] ** 2))), "bias_t": float(np.mean(err[:, :, d]))}
           for d, b in enumerate(banks)]
    T_hat = run["theta_hat"][:, :, flare_domain] * t_sd[flare_domain]  # (n, T)
    se_t = run["se"][:, :, flare_domain] * t_sd[flare_domain]
    dT = T_hat[:, 1:] - T_hat[:, :-1]  # change at sittings 1..T-1
    reliable = is_reliable(dT, se_t[:, :-1], se_t[:, 1:])
    flare_at = np.asarray(flare_at)
    fl, st = flare_at > 0, groups == "stable"
    rows, at = np.flatnonzero(fl), flare_at[fl]
    worse = reliable[rows, at - 1] & (dT[rows, at - 1] > 0)
    e = err[rows, at, flare_domain]
    flare = {"n": int(fl.sum()), "reliable_worse_share": float(worse.mean()) if fl.any() else None,
             "bias_t_at_flare": float(e.mean()) if fl.any() else None,
             "rmse_t_at_flare": float(np.sqrt(np.mean(e ** 2))) if fl.any() else None,
             "stable_reliable_share": float(reliable[st].mean()) if st.any() else None}
    return {"questions": q, "per_domain": per, "flare": flare}


def battery_cohort(banks: Sequence, R: np.ndarray, *, n: int, sittings: int = 6, interval_days: float = 14.0,
                   flare_bank: str = "pain-interference", flare_sd: float = 1.0, trend_per_week: float = 0.05,
                   walk_sd_per_week: float = 0.05, baseline: float = 0.5, rng: np.random.Generator) -> dict:
    r"""True θ trajectories of a cohort over a battery's domains, in four equal groups (:data:`GROUPS`).

    The groups' shapes are :mod:`cat_prom.simulation.cohort`'s trajectory kinds
    (:func:`~cat_prom.simulation.cohort.cohort_trajectories`, the cohorts of the clinical layer), spread over
    the domains: *stable* nothing; *worsening* / *improving* a linear trend of ``trend_per_week`` θ per week
    (worse / better) on the pain, function and (half) sleep domains; *flare* a sudden step of ``flare_sd``
    (worse) in ``flare_bank`` alone — the hardest case for joint scoring, whose other domains say "no
    change" — at a sitting drawn per patient from the 2nd to the last, lasting to the end. Under that,
    every simulee starts at :math:`\theta_0 \sim N(b\,s, R)` (``s`` = +1 on symptom banks, -1 on
    higher-is-better banks: a clinic population with more problems than the reference, ``b`` =
    ``baseline``) and wanders as a random walk correlated like ``R``, SD ``walk_sd_per_week`` per √week.

    Returns ``theta`` (n, T, D), ``days`` (T,), ``groups`` (n,), ``flare_at`` (n,) (the flare sitting's
    index, -1 outside the flare group) and the parameters.
    """
    from .cohort import TrajectoryParams, cohort_trajectories
    D, T = len(banks), int(sittings)
    days = np.arange(T) * float(interval_days)
    sign = np.array([-1.0 if b.direction == "higher_is_better" else 1.0 for b in banks])
    shape = cohort_trajectories(n, T, rng=rng, mix={g: 1.0 for g in GROUPS}, params=TrajectoryParams(
        start_mean=0.0, start_sd=0.0, drift=trend_per_week * interval_days / 7.0, flare_size=flare_sd,
        flare_length=T, noise_sd=0.0))
    change, groups = shape.theta, np.asarray(shape.kind)  # (n, T) worse-direction change from the start
    theta0 = rng.multivariate_normal(baseline * sign, R, size=n, method="cholesky")
    steps = rng.multivariate_normal(np.zeros(D), R, size=(n, T), method="cholesky")
    steps *= walk_sd_per_week * np.sqrt(interval_days / 7.0)
    steps[:, 0] = 0.0
    theta = theta0[:, None, :] + np.cumsum(steps, axis=1)
    load = np.array([_TREND_LOAD.get(b.id, 0.0) for b in banks]) * sign
    trend = np.isin(groups, ("worsening", "improving"))
    theta[trend] += change[trend][:, :, None] * load
    ids = [b.id for b in banks]
    flare_at = np.full(n, -1)
    fl = groups == "flare"
    if flare_bank in ids and fl.any():
        d = ids.index(flare_bank)
        theta[fl, :, d] += change[fl] * sign[d]
        flare_at[fl] = np.argmax(change[fl] > 0, axis=1)
    return {"theta": theta, "days": days, "groups": groups, "flare_at": flare_at,
            "params": {"n": n, "sittings": T, "interval_days": interval_days, "flare_bank": flare_bank,
                       "flare_sd": flare_sd, "trend_per_week": trend_per_week, "walk_sd_per_week": walk_sd_per_week,
                       "baseline": baseline}}


def drift_estimates(run: dict, days: Sequence[float], groups: np.ndarray, banks: Sequence) -> list[dict]:
    """Drift SD per week of each bank by :func:`cat_prom.priors.estimate_drift_sd` from consecutive sittings of a
    run scored with the population prior (design ``today``): over every simulee, and over the stable group."""
    days = np.asarray(days, dtype=float)
    n, T, D = run["theta_hat"].shape
    gap = np.broadcast_to(np.diff(days)[None, :], (n, T - 1))
    out = []
    for d, b in enumerate(banks):
        th, se = run["theta_hat"][:, :, d], run["se"][:, :, d]
        row = {"bank_id": b.id}
        for label, rows in (("all", np.ones(n, dtype=bool)), ("stable", groups == "stable")):
            if rows.sum() * (T - 1) < 10:  # too few pairs to say
                row[label] = None
                continue
            e = estimate_drift_sd(th[rows, :-1], se[rows, :-1], th[rows, 1:], se[rows, 1:], gap[rows])
            row[label] = e["drift_sd_per_week"]
        out.append(row)
    return out


def _f(x, d=1):
    return "–" if x is None else f"{x:.{d}f}"


def markdown(results: Mapping[str, dict], banks: Sequence, meta: Mapping[str, Any]) -> str:
    """The comparison table of :func:`summarise` results by design name (Markdown)."""
    names = list(results)
    lines = ["| design | questions per sitting: median | p90 | follow-up sittings: median | p90 | first sitting: median |",
             "|---|---:|---:|---:|---:|---:|"]
    for k in names:
        q = results[k]["questions"]
        lines.append(f"| {k} | {q['median']:g} | {q['p90']:g} | {q['median_follow_up']:g} | {q['p90_follow_up']:g} | "
                     f"{q['median_first']:g} |")
    lines += ["", "RMSE / bias of T (estimate minus true, T units), all sittings:", "",
              "| domain | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for d, b in enumerate(banks):
        cells = [f"{_f(results[k]['per_domain'][d]['rmse_t'])} / {results[k]['per_domain'][d]['bias_t']:+.1f}"
                 for k in names]
        lines.append(f"| {b.id} | " + " | ".join(cells) + " |")
    fb = meta.get("flare_bank")
    lines += ["", f"Flare group ({fb} +{meta.get('flare_sd', 1):g} SD from a sitting drawn per patient, 2nd to last): "
              f"share flagged as a reliable worsening at the flare sitting (|ΔT| > 1.96·SE_Δ against the sitting "
              f"before, ΔT > 0), T bias and RMSE of {fb} there; stable group: share of follow-up sittings with a "
              f"reliable change in {fb} (false alarms).", "",
              "| design | flare: flagged | flare: T bias | flare: T RMSE | stable: flagged |", "|---|---:|---:|---:|---:|"]
    for k in names:
        f = results[k]["flare"]
        lines.append(f"| {k} | {f['reliable_worse_share']:.1%} | {f['bias_t_at_flare']:+.1f} | "
                     f"{_f(f['rmse_t_at_flare'])} | {f['stable_reliable_share']:.1%} |")
    drift = meta.get("drift")
    if drift:
        lines += ["", "Drift SD per week estimated from today's design (population prior) by "
                  "`cat_prom.priors.estimate_drift_sd` over consecutive sittings (true random walk "
                  f"{meta.get('walk_sd_per_week', 0):g}/√week plus the groups' trends and flares):", "",
                  "| domain | all simulees | stable group |", "|---|---:|---:|"]
        lines += [f"| {r['bank_id']} | {_f(r['all'], 3)} | {_f(r['stable'], 3)} |" for r in drift]
    return "\n".join(lines) + "\n"

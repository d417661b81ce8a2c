r"""Alert rates of a rules configuration over a simulated cohort, before it is switched on.

Alert fatigue is a known failure of ePRO systems. :func:`simulate_alerts` answers "how many
alerts would this configuration raise, and how many of them would be right?": a cohort of
patients (:func:`cat_prom.simulation.cohort.cohort_trajectories`: stable, slowly worsening,
flaring, improving) answers the design's CAT at every sitting — the engine's own batch CAT
(:func:`cat_prom.simulation.run.run_cats`, responses drawn from the model at each patient's
true θ) — and after every finished sitting the rules (:mod:`cat_prom.clinical.rules`) are
evaluated on the sitting's posterior exactly as the service evaluates them, then deduplicated
(:func:`cat_prom.clinical.dedupe.decide`).

Reported per rule, per 100 finished sittings: **firings** (the rule's condition was certain
enough), **alerts** (what a clinician is sent: new and re-opened alerts after dedupe, with
every alert acknowledged before the patient's next sitting unless ``acknowledge=False``), the
**true** and **false** share of firings (whether the condition held for the patient's *true*
score: true T beyond the acceptable level or in the severe band, true worsening ≥ MID), and
the **sensitivity** (share of finished sittings whose true condition held in which the rule
fired).

Acceptable levels come from the rules file's ``acceptable`` policy: ``fixed`` (the clinic
default ``t`` per bank for everyone) or ``baseline_offset`` (each patient's acceptable T is their
first scored T moved ``offset_t`` points in the worse direction; before that, the default ``t``
if there is one). A design whose classification stop is the patient's goal (``"threshold_t":
"goal"``) is resolved per patient with that acceptable level.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..bank import ItemBank
from ..design import Design, resolve_design
from ..errors import InvalidDataError, UnresolvedGoalError
from ..evidence import NOT_SCORED, SCORED
from ..io.csvfile import csv_writer
from ..simulation.cohort import Cohort
from ..simulation.responders import model_responder
from ..simulation.run import run_cats
from .change import worse_sign
from .dedupe import decide
from .rules import RULES, SCORE_RULES, DomainScore, RuleConfig, evaluate_abandoned, evaluate_domain, severe_threshold

__all__ = ["AlertSimulation", "simulate_alerts"]

_CSV_COLUMNS = ("patient", "trajectory", "sitting", "rule", "certainty", "certainty_required", "threshold_t",
                "t_score", "t_se", "true_t", "true_condition", "action")


@dataclass
class AlertSimulation:
    """Outcome of :func:`simulate_alerts`: one record per firing, and per-rule counts.

    ``records``: dicts with ``patient``, ``trajectory``, ``sitting`` (0-based), ``rule``,
    ``certainty``, ``certainty_required``, ``threshold_t``, ``t_score``, ``t_se``, ``true_t``,
    ``true_condition`` (bool) and ``action`` (``open`` / ``update`` / ``reopen``).
    """

    bank_id: str
    config: RuleConfig
    design: Design
    cohort: Cohort
    records: list = field(default_factory=list)
    n_finished: int = 0
    n_abandoned: int = 0
    n_not_scored: int = 0
    condition_true: dict = field(default_factory=lambda: {r: 0 for r in RULES})
    seed: int | None = None
    acknowledge: bool = True
    abandon_rate: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Per-rule rates per 100 finished sittings and true/false shares, as a JSON-ready dict."""
        per100 = (lambda k: 100.0 * k / self.n_finished) if self.n_finished else (lambda k: None)
        by_rule = {}
        for rule in RULES:
            if not self.config.is_enabled(rule):
                continue
            recs = [r for r in self.records if r["rule"] == rule]
            fired = len(recs)
            alerts = sum(r["action"] in ("open", "reopen") for r in recs)
            true = sum(bool(r["true_condition"]) for r in recs)
            cond = self.condition_true.get(rule, 0)
            caught = len({(r["patient"], r["sitting"]) for r in recs if r["true_condition"]})
            by_rule[rule] = {
                "firings": fired, "firings_per_100_sittings": per100(fired),
                "alerts": alerts, "alerts_per_100_sittings": per100(alerts),
                "true": true, "false": fired - true,
                "true_share": true / fired if fired else None, "false_share": (fired - true) / fired if fired else None,
                "sittings_with_true_condition": cond,
                "sensitivity": caught / cond if cond and rule in SCORE_RULES else None,
            }
        fired = len(self.records)
        alerts = sum(r["action"] in ("open", "reopen") for r in self.records)
        true = sum(bool(r["true_condition"]) for r in self.records)
        sittings_alerted = len({(r["patient"], r["sitting"]) for r in self.records
                                if r["action"] in ("open", "reopen")})
        return {
            "bank_id": self.bank_id, "n_patients": self.cohort.n_patients, "n_sittings": self.cohort.n_sittings,
            "finished_sittings": self.n_finished, "abandoned_sittings": self.n_abandoned,
            "not_scored_sittings": self.n_not_scored,
            "trajectory_mix": self.cohort.mix, "seed": self.seed, "acknowledge_before_next_sitting": self.acknowledge,
            "abandon_rate": self.abandon_rate, "rules": self.config.to_dict(), "design": self.design.to_dict(),
            "by_rule": by_rule,
            "total": {"firings": fired, "firings_per_100_sittings": per100(fired), "alerts": alerts,
                      "alerts_per_100_sittings": per100(alerts), "true": true, "false": fired - true,
                      "false_share": (fired - true) / fired if fired else None,
                      "share_of_sittings_with_an_alert": sittings_alerted / self.n_finished if self.n_finished
                      else None},
        }

    def to_csv(self, path: str | os.PathLike) -> None:
        """One row per firing (columns :data:`_CSV_COLUMNS`), through the formula-safe CSV writer."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv_writer(fh, lineterminator="\r\n")
            w.writerow(_CSV_COLUMNS)
            for r in self.records:
                w.writerow([_cell(r[c]) for c in _CSV_COLUMNS])


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _true_condition(rule: str, rec: dict, true_t: float, ref_true_t: float | None, sign: int, mid: float) -> bool:
    if rule in ("above_acceptable", "severe_band"):
        return sign * (true_t - rec["threshold_t"]) > 0
    if rule in ("worse_than_previous", "worse_than_baseline"):
        return ref_true_t is not None and sign * (true_t - ref_true_t) >= mid
    return True  # abandoned_sittings: observed


def simulate_alerts(bank: ItemBank, design: Design | dict | None, config: RuleConfig, cohort: Cohort, *,
                    seed: int | None = None, abandon_rate: float = 0.0, acknowledge: bool = True) -> AlertSimulation:
    """Run the rules over a simulated cohort answering the design's CAT at every sitting.

    Parameters
    ----------
    bank : ItemBank
    design : Design, dict or None
        The CAT design (``"threshold_t": "goal"`` is resolved per patient, see the module docstring).
    config : RuleConfig
    cohort : Cohort
        True θ trajectories (:func:`cat_prom.simulation.cohort.cohort_trajectories`), oriented for
        this bank's direction.
    seed : int, optional
        Seed of the responses, abandonments and exposure randomisation.
    abandon_rate : float in [0, 1)
        Probability that a patient abandons a sitting (no score; feeds ``abandoned_sittings``).
    acknowledge : bool
        Clinicians acknowledge every alert before the patient's next sitting (default), so a
        repeat firing re-opens only after a further MID worsening; ``False``: alerts stay open.

    Returns
    -------
    AlertSimulation
    """
    design = design if isinstance(design, Design) else Design.from_dict(design)
    if cohort.direction != bank.direction:
        raise InvalidDataError(f"the cohort's trajectories are oriented for {cohort.direction!r}, the bank "
                               f"{bank.id!r} is {bank.direction!r}", field="cohort")
    if not isinstance(abandon_rate, (int, float)) or not 0 <= abandon_rate < 1:
        raise InvalidDataError(f"abandon_rate must be in [0, 1), got {abandon_rate!r}", field="abandon_rate")
    rng = np.random.default_rng(seed)
    P, K = cohort.n_patients, cohort.n_sittings
    sign = worse_sign(bank.direction)
    mid = config.mid(bank.id)
    default_acc = config.default_acceptable_t(bank.id)
    if design.needs_goal and default_acc is None and config.acceptable_policy == "fixed":
        raise UnresolvedGoalError("the design stops on the patient's goal, but the rules file sets no acceptable "
                                  f"level for bank {bank.id!r} (acceptable.t)", field="acceptable.t")
    true_t = cohort.t_scores(bank.t_mean, bank.t_sd)
    nodes_t = tuple((bank.t_mean + bank.t_sd * design.grid_theta()).tolist())
    severe_t = severe_threshold(bank)
    tables = bank.grid(design.grid_theta())
    out = AlertSimulation(bank.id, config, design, cohort, seed=seed, acknowledge=acknowledge,
                          abandon_rate=float(abandon_rate))
    acceptable: list[float | None] = [default_acc] * P
    previous: list[tuple[DomainScore, float] | None] = [None] * P   # (score, true T) of the last scored sitting
    baseline: list[tuple[DomainScore, float] | None] = [None] * P
    statuses: list[list[str]] = [[] for _ in range(P)]
    alerts: dict[tuple[int, str], dict] = {}
    for k in range(K):
        abandoned = rng.random(P) < abandon_rate
        sitting = _run_sitting(bank, design, cohort.theta[:, k], ~abandoned, acceptable, rng, tables)
        if acknowledge:  # every live alert was acknowledged before this sitting
            for a in alerts.values():
                if a["status"] == "open":
                    a["status"], a["acknowledged_record"] = "acknowledged", a["record"]
        for p in range(P):
            if abandoned[p]:
                out.n_abandoned += 1
                statuses[p].append("abandoned")
                rec = evaluate_abandoned(statuses[p], config=config)
                if rec is not None:
                    out.condition_true["abandoned_sittings"] += 1
                    out.records.append(_dedupe(alerts, p, rec, mid, cohort, k, None, True))
                continue
            statuses[p].append("finished")
            out.n_finished += 1
            t, t_se, lp = sitting[p]
            if t is None:
                out.n_not_scored += 1
                current = DomainScore(bank.id, bank.domain, bank.direction, NOT_SCORED, None, None, severe_t)
            else:
                current = DomainScore(bank.id, bank.domain, bank.direction, SCORED, t, t_se, severe_t,
                                      tuple(lp.tolist()), nodes_t)
            recs = evaluate_domain(current, config=config, acceptable_t=acceptable[p],
                                   previous=previous[p][0] if previous[p] else None,
                                   baseline=baseline[p][0] if baseline[p] else None, include_quiet=True)
            tt = float(true_t[p, k])
            for rec in recs:
                ref = {"worse_than_previous": previous[p], "worse_than_baseline": baseline[p]}.get(rec["rule"])
                truth = _true_condition(rec["rule"], rec, tt, ref[1] if ref else None, sign, mid)
                out.condition_true[rec["rule"]] += int(truth)
                if rec["fired"]:
                    out.records.append(_dedupe(alerts, p, rec, mid, cohort, k, tt, truth))
            if current.scored:
                previous[p] = (current, tt)
                if baseline[p] is None:
                    baseline[p] = (current, tt)
                    if config.acceptable_policy == "baseline_offset":
                        acceptable[p] = t + sign * config.acceptable_offset_t
    return out


def _dedupe(alerts: dict, p: int, rec: dict, mid: float, cohort: Cohort, k: int, true_t, truth: bool) -> dict:
    key = (p, rec["rule"])
    d = decide(alerts.get(key), rec, mid=mid)
    a = alerts.setdefault(key, {"status": "open", "record": rec})
    if d.action in ("open", "reopen"):
        a.update(status="open", acknowledged_record=None)
    a["record"] = rec
    return {"patient": p, "trajectory": str(cohort.kind[p]), "sitting": k, "rule": rec["rule"],
            "certainty": rec["certainty"], "certainty_required": rec["certainty_required"],
            "threshold_t": rec["threshold_t"], "t_score": rec["t_score"], "t_se": rec["t_se"], "true_t": true_t,
            "true_condition": truth, "action": d.action}


def _run_sitting(bank, design, theta, present, acceptable, rng, tables) -> list:
    """(T, T SE, log posterior) per patient for one sitting — (None, None, None) where not scored or absent.

    Patients who share a resolved design (the same acceptable level for a goal design; everyone
    otherwise) run as one batch of the engine's CAT.
    """
    P = theta.shape[0]
    res: list = [(None, None, None)] * P
    groups: dict[Any, list[int]] = {}
    for p in np.flatnonzero(present).tolist():
        groups.setdefault(acceptable[p] if design.needs_goal else None, []).append(p)
    for acc, rows in groups.items():
        if design.needs_goal and acc is None:
            raise UnresolvedGoalError("the design stops on the patient's goal, but a simulated patient has no "
                                      "acceptable level yet; give the rules file a default acceptable.t",
                                      field="acceptable.t")
        d = resolve_design(design, acc)
        idx = np.asarray(rows)
        sub_theta = theta[idx]
        r = run_cats(bank, d, idx.size, model_responder(bank, sub_theta, rng), rng, tables=tables, posterior=True)
        for i, p in enumerate(rows):
            if (r["cats"][i] >= 0).any():
                res[p] = (bank.t_mean + bank.t_sd * float(r["theta"][i]), bank.t_sd * float(r["se"][i]),
                          r["log_post"][i])
    return res

"""The clinical layer of the engine: change over time, certainty, alert rules, dedupe, GAS, cohort alert rates.

Pure functions on plain values (numbers, dicts, arrays): no storage, no clock, no HTTP. The
service stores goals, alerts and ratings and calls these to decide what to store.

Modules: :mod:`~cat_prom.clinical.change` (ΔT, SE of the change, reliable change, MID, clinical
direction), :mod:`~cat_prom.clinical.certainty` (posterior probability beyond a threshold),
:mod:`~cat_prom.clinical.rules` (the alert rules and their configuration),
:mod:`~cat_prom.clinical.dedupe` (open / update / re-open), :mod:`~cat_prom.clinical.gas`
(Goal Attainment Scaling T-scores), :mod:`~cat_prom.clinical.cohort` (alert rates of a rules
file over simulated cohorts). What every number means for a clinician: ``docs/clinicians.md``.
"""
from .certainty import prob_beyond, prob_beyond_normal, prob_worse_than, worse_side
from .change import DEFAULT_MID, RELIABLE_Z, Change, change, changes, worsening
from .dedupe import Decision, decide
from .gas import DEFAULT_RHO, GAS_LEVELS, gas_t_score
from .rules import RULES, DomainScore, RuleConfig, evaluate_abandoned, evaluate_domain, severe_threshold

__all__ = ["prob_beyond", "prob_beyond_normal", "prob_worse_than", "worse_side", "DEFAULT_MID", "RELIABLE_Z",
           "Change", "change", "changes", "worsening", "Decision", "decide", "DEFAULT_RHO", "GAS_LEVELS",
           "gas_t_score", "RULES", "DomainScore", "RuleConfig", "evaluate_abandoned", "evaluate_domain",
           "severe_threshold"]

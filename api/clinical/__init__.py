"""The clinical layer of the service (issue 8): goals, change, alerts, triage, webhooks.

Use cases over the store (:mod:`api.store.clinical`, :mod:`api.store.outbox`) and the engine's
clinical functions (:mod:`cat_prom.clinical`: change, certainty, rules, dedupe, GAS, goal
thresholds); no SQL and no HTTP here, and no clinical arithmetic either: every number a
clinician reads is computed by the engine.
"""
from __future__ import annotations

from ..problems import Problem
from ..store import clinical as store
from .alerts import AlertsMixin
from .evaluate import EvaluateMixin
from .goals import GoalsMixin
from .patients import PatientsMixin

__all__ = ["ClinicalService"]

class ClinicalService(EvaluateMixin, PatientsMixin, GoalsMixin, AlertsMixin):
    """One object per app (``app.extensions["cat_prom"].clinical``)."""

    def resolve_goal_design(self, tenant: str, patient: str, bank_id: str, design):
        """A design (:class:`cat_prom.design.Design`) whose classification threshold is ``"goal"``, with the
        patient's current acceptable level (or the clinic default) put in by the engine's
        :func:`~cat_prom.design.resolve_design`; other designs unchanged."""
        if design is None or not design.needs_goal:
            return design
        with self.db.read() as conn:
            t, _ = self.acceptable_t(conn, tenant, patient, bank_id)
        if t is None:
            raise Problem("no-acceptable-level",
                          f"The design stops at the patient's acceptable level (\"threshold_t\": \"goal\") for bank "
                          f"{bank_id!r}, but neither the patient nor the clinic has one: set it with PUT "
                          f"/v1/patients/{{ref}}/goals/{bank_id} (or a clinic default with PUT "
                          f"/v1/settings/banks/{bank_id}), or give a number.",
                          errors={"design": [f"no acceptable level for {bank_id!r}"]})
        from cat_prom.design import resolve_design
        return resolve_design(design, t)

    def previous_sittings(self, tenant: str, patient: str, bank_ids, now) -> dict[str, dict]:
        """The engine's previous sitting (:class:`cat_prom.priors.PreviousSitting` as a dict) of each of
        ``bank_ids`` the patient has a scored result for: its θ and SE from ``domain_results`` and the days
        from its finish to ``now``. Banks never scored are left out (their sitting uses the population prior)."""
        from cat_prom.priors import PreviousSitting
        with self.db.read() as conn:
            last = store.last_scored_results(conn, tenant, patient, bank_ids)
        return {b: PreviousSitting(theta=r.theta, se=r.se,
                                   elapsed_days=max(0.0, (now - r.finished_at).total_seconds() / 86400.0)).to_dict()
                for b, r in last.items()}

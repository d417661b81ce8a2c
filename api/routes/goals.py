"""A patient's acceptable levels, baselines and personal goals (Goal Attainment Scaling)."""
from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView

from ..audit import audited
from ..keys import require
from ..schemas import ProblemSchema
from ..schemas_clinical import (BaselineSchema, CreatePersonalGoalSchema, GoalsSchema, AcceptableLevelSchema,
                                PatchPersonalGoalSchema, PersonalGoalSchema, PersonalGoalsQuerySchema,
                                PersonalGoalsSchema, PutBaselineSchema, PutGoalSchema, RateGoalSchema, RatingSchema)
from ..smorest import Blueprint
from .patients import REF_PARAM, check_ref

blp = Blueprint("goals", __name__, url_prefix="/v1/patients",
                description="Goals agreed with the patient: acceptable levels per domain, baselines, and personal "
                            "goals rated with Goal Attainment Scaling. Patient apps and clinicians.")
_PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}


def _svc():
    return current_app.extensions["cat_prom"].clinical


@blp.route("/<string:patient_ref>/goals", parameters=[REF_PARAM])
class Goals(MethodView):
    @require("patient-app", "clinician")
    @blp.response(200, GoalsSchema)
    @audited("read")
    def get(self, patient_ref):
        """The patient's acceptable level per domain now (their own, or the clinic default) and every change
        ever made (who set what, when; never overwritten)."""
        return _svc().goals(g.principal.tenant, check_ref(patient_ref))


@blp.route("/<string:patient_ref>/goals/<string:bank_id>", parameters=[REF_PARAM])
class Goal(MethodView):
    @require("patient-app", "clinician")
    @blp.arguments(PutGoalSchema)
    @blp.response(200, AcceptableLevelSchema)
    @blp.alt_response(404, description="bank-not-found", **_PROBLEM)
    @blp.alt_response(403, description="forbidden: a patient-app key gave `agreed_by: clinician`", **_PROBLEM)
    @audited("update")
    def put(self, args, patient_ref, bank_id):
        """Set the patient's acceptable level for a domain, as a T-score or a severity band (its worst edge
        becomes the bound). A new entry in the history; the previous level is kept."""
        return _svc().put_acceptable(g.principal, check_ref(patient_ref), bank_id, args)


@blp.route("/<string:patient_ref>/baselines/<string:bank_id>", parameters=[REF_PARAM])
class Baseline(MethodView):
    @require("clinician")
    @blp.arguments(PutBaselineSchema)
    @blp.response(200, BaselineSchema)
    @blp.alt_response(404, description="not-found: no such scored sitting of this patient", **_PROBLEM)
    @audited("update")
    def put(self, args, patient_ref, bank_id):
        """Mark a finished sitting as the patient's baseline for a domain (default: their first scored sitting).
        Changes "against baseline" are measured from it."""
        return _svc().mark_baseline(g.principal, check_ref(patient_ref), bank_id, args["session_id"])


@blp.route("/<string:patient_ref>/personal-goals", parameters=[REF_PARAM])
class PersonalGoals(MethodView):
    @require("patient-app", "clinician")
    @blp.arguments(PersonalGoalsQuerySchema, location="query")
    @blp.response(200, PersonalGoalsSchema)
    @audited("read")
    def get(self, args, patient_ref):
        """The patient's personal goals with their ratings, and the GAS T-score on each rating date."""
        return _svc().personal_goals(g.principal.tenant, check_ref(patient_ref),
                                     include_archived=args["include_archived"])

    @require("patient-app", "clinician")
    @blp.arguments(CreatePersonalGoalSchema)
    @blp.response(201, PersonalGoalSchema)
    @audited("create")
    def post(self, args, patient_ref):
        """Add a personal goal in the patient's words, with its five GAS levels and a weight."""
        return _svc().create_goal(g.principal, check_ref(patient_ref), args)


@blp.route("/<string:patient_ref>/personal-goals/<string:goal_id>", parameters=[REF_PARAM])
class PersonalGoal(MethodView):
    @require("patient-app", "clinician")
    @blp.arguments(PatchPersonalGoalSchema)
    @blp.response(200, PersonalGoalSchema)
    @blp.alt_response(404, description="not-found", **_PROBLEM)
    @audited("update")
    def patch(self, args, patient_ref, goal_id):
        """Reword a goal, its levels or its weight (ratings are kept)."""
        return _svc().update_goal(g.principal, check_ref(patient_ref), goal_id, args)

    @require("patient-app", "clinician")
    @blp.response(204)
    @blp.alt_response(404, description="not-found", **_PROBLEM)
    @audited("update")
    def delete(self, patient_ref, goal_id):
        """Archive a goal: it leaves the GAS score and takes no more ratings; its history is kept."""
        _svc().archive_goal(g.principal, check_ref(patient_ref), goal_id)
        return "", 204


@blp.route("/<string:patient_ref>/personal-goals/<string:goal_id>/ratings", parameters=[REF_PARAM])
class Ratings(MethodView):
    @require("patient-app", "clinician")
    @blp.arguments(RateGoalSchema)
    @blp.response(201, RatingSchema)
    @blp.alt_response(404, description="not-found", **_PROBLEM)
    @audited("create")
    def post(self, args, patient_ref, goal_id):
        """Rate the goal's attainment (-2..+2) on a date; `rated_by` is `patient` for a patient-app key,
        `clinician` for a clinician's."""
        return _svc().rate_goal(g.principal, check_ref(patient_ref), goal_id, args)

"""Patients of a tenant: the clinician's triage list and one patient's results over time."""
from __future__ import annotations

import re

from flask import current_app, g
from flask.views import MethodView

from ..audit import audited
from ..keys import require
from ..problems import Problem
from ..schemas import REF_RE, PatientResultsQuerySchema, PatientResultsSchema, ProblemSchema
from ..schemas_clinical import PatientsQuerySchema, TriageSchema
from ..smorest import Blueprint

blp = Blueprint("patients", __name__, url_prefix="/v1/patients",
                description="The triage list and results over time (clinicians).")
_REF = re.compile(REF_RE)
REF_PARAM = {"in": "path", "name": "patient_ref", "description": "The opaque patient reference given when the "
             "sessions were created.", "schema": {"type": "string", "pattern": REF_RE}}


def check_ref(patient_ref: str) -> str:
    if not _REF.fullmatch(patient_ref):
        raise Problem("validation-error", "The patient reference is not valid.",
                      errors={"patient_ref": ["1-128 characters: letters, digits and . _ : @ -"]})
    return patient_ref


def _ext():
    return current_app.extensions["cat_prom"]


@blp.route("")
class Patients(MethodView):
    @require("clinician")
    @blp.arguments(PatientsQuerySchema, location="query")
    @blp.response(200, TriageSchema)
    @audited("read", many="patients")
    def get(self, args):
        """The triage list: each patient with a finished sitting, the latest score per domain and its change,
        open alerts and when they last answered. Sorted by need: most open alerts first, then the largest
        worsening; paginated."""
        return _ext().clinical.triage(g.principal.tenant, args["limit"], args["offset"])


@blp.route("/<string:patient_ref>/results", parameters=[REF_PARAM])
class PatientResults(MethodView):
    @require("clinician")
    @blp.arguments(PatientResultsQuerySchema, location="query")
    @blp.response(200, PatientResultsSchema)
    @blp.alt_response(422, schema=ProblemSchema, content_type="application/problem+json",
                      description="validation-error: a query parameter (unknown ones too), or the patient "
                                  "reference, is not valid")
    @audited("read")
    def get(self, args, patient_ref):
        """Finished sittings of one patient, oldest first, with per-domain scores, each scored domain's change
        (against the previous scored sitting and the baseline), the patient's goal and the alerts the sitting
        opened or confirmed."""
        check_ref(patient_ref)
        ext = _ext()
        body = ext.sessions.patient_results(g.principal.tenant, patient_ref, args["limit"], args["offset"],
                                            since=args.get("from_"), until=args.get("to"))
        return ext.clinical.annotate_results(g.principal.tenant, patient_ref, body)

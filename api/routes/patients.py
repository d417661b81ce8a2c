"""A patient's scored sittings over time (clinicians)."""
from __future__ import annotations

import re

from flask import current_app, g
from flask.views import MethodView

from ..keys import require
from ..problems import Problem
from ..schemas import REF_RE, PatientResultsQuerySchema, PatientResultsSchema, ProblemSchema
from ..smorest import Blueprint

blp = Blueprint("patients", __name__, url_prefix="/v1/patients", description="Results over time (clinicians).")
_REF = re.compile(REF_RE)


@blp.route("/<string:patient_ref>/results", parameters=[
    {"in": "path", "name": "patient_ref", "description": "The opaque patient reference given when the sessions "
     "were created.", "schema": {"type": "string", "pattern": REF_RE}}])
class PatientResults(MethodView):
    @require("clinician")
    @blp.arguments(PatientResultsQuerySchema, location="query")
    @blp.response(200, PatientResultsSchema)
    @blp.alt_response(422, schema=ProblemSchema, content_type="application/problem+json",
                      description="validation-error: a query parameter, or the patient reference, is not valid")
    def get(self, args, patient_ref):
        """Finished sittings of one patient, oldest first, with per-domain scores."""
        if not _REF.fullmatch(patient_ref):
            raise Problem("validation-error", "The patient reference is not valid.",
                          errors={"patient_ref": ["1-128 characters: letters, digits and . _ : @ -"]})
        return current_app.extensions["cat_prom"].sessions.patient_results(
            g.principal.tenant, patient_ref, args["limit"], args["offset"])

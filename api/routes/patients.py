"""A patient's scored sittings over time (clinicians)."""
from __future__ import annotations

import re

from flask import current_app, g
from flask.views import MethodView

from ..keys import require
from ..problems import Problem
from ..schemas import REF_RE, PatientResultsQuerySchema, PatientResultsSchema
from ..smorest import Blueprint

blp = Blueprint("patients", __name__, url_prefix="/v1/patients", description="Results over time (clinicians).")
_REF = re.compile(REF_RE)


@blp.route("/<string:patient_ref>/results")
class PatientResults(MethodView):
    @require("clinician")
    @blp.arguments(PatientResultsQuerySchema, location="query")
    @blp.response(200, PatientResultsSchema)
    def get(self, args, patient_ref):
        """Finished sittings of one patient, oldest first, with per-domain scores."""
        if not _REF.match(patient_ref):
            raise Problem("validation-error", "The patient reference is not valid.",
                          errors={"patient_ref": ["1-128 characters: letters, digits and . _ : @ -"]})
        return current_app.extensions["cat_prom"].sessions.patient_results(
            g.principal.tenant, patient_ref, args["limit"], args["offset"])

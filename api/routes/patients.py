"""Patients of a tenant: the clinician's triage list and one patient's results over time."""
from __future__ import annotations

import re

import marshmallow as ma
from flask import current_app, g
from flask.views import MethodView
from marshmallow import fields

from ..audit import audited, replace_subject
from ..keys import require
from ..patient_data import erase_patient, export_patient
from ..problems import Problem
from ..schemas import REF_RE, Strict, PatientResultsQuerySchema, PatientResultsSchema, ProblemSchema
from ..schemas_clinical import PatientsQuerySchema, TriageSchema
from ..smorest import Blueprint

blp = Blueprint("patients", __name__, url_prefix="/v1/patients",
                description="The triage list and results over time (clinicians); export and erasure of one "
                            "patient's data.")
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


class PatientExportSchema(ma.Schema):
    patient = fields.String()
    tenant = fields.String()
    exported_at = fields.String()
    sittings = fields.List(fields.Dict(), metadata={
        "description": "Every sitting (any status) with its design, `answers` (the response log) and "
                       "`domain_results`."})
    acceptable_levels = fields.List(fields.Dict(), metadata={"description": "Every change, oldest first."})
    baselines = fields.List(fields.Dict())
    personal_goals = fields.List(fields.Dict(), metadata={"description": "Archived ones too, with their ratings."})
    gas = fields.Dict(metadata={"description": "GAS T-scores over time (as GET .../personal-goals)."})
    alerts = fields.List(fields.Dict())
    links = fields.List(fields.Dict(), metadata={"description": "Links made for the patient (never their tokens)."})
    webhook_deliveries = fields.List(fields.Dict(), metadata={
        "description": "Metadata of webhook deliveries about the patient's alerts: endpoint, event, status, tries."})


class EraseQuerySchema(Strict):
    confirm = fields.String(required=True, metadata={
        "description": "The patient reference again, exactly: erasure cannot be undone."})


class ErasureSchema(ma.Schema):
    patient = fields.String()
    erased_at = fields.String()
    audit_pseudonym = fields.String(metadata={
        "description": "What the audit log now shows instead of the reference (`erased:<hash>`)."})
    audit_rows_pseudonymised = fields.Integer()
    deleted = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Rows deleted per table."})


@blp.route("/<string:patient_ref>/export", parameters=[REF_PARAM])
class PatientExport(MethodView):
    @require("clinician", "admin")
    @blp.response(200, PatientExportSchema)
    @blp.alt_response(422, schema=ProblemSchema, content_type="application/problem+json",
                      description="validation-error: the patient reference is not valid")
    @audited("export")
    def get(self, patient_ref):
        """Everything the service holds about one patient in your tenant, as JSON (a subject access or
        portability request): sittings with answers and results, acceptable levels, baselines, personal
        goals with GAS, alerts, links and webhook delivery metadata. A patient with no data gets empty
        lists. Recorded in the audit log as `export`."""
        ext = _ext()
        return export_patient(ext.store, ext.clinical, g.principal.tenant, check_ref(patient_ref))


@blp.route("/<string:patient_ref>", parameters=[REF_PARAM])
class Patient(MethodView):
    @require("admin")
    @blp.arguments(EraseQuerySchema, location="query")
    @blp.response(200, ErasureSchema)
    @blp.alt_response(422, schema=ProblemSchema, content_type="application/problem+json",
                      description="validation-error: `confirm` is missing or is not the patient reference")
    @audited("erase")
    def delete(self, args, patient_ref):
        """Erase one patient's data in your tenant, in one transaction: sittings, answers, results, goals,
        ratings, baselines, alerts, webhook outbox rows and deliveries, links. Needs `?confirm=<the same
        reference>`. The audit log keeps its rows (who did what, when) with the reference replaced by a
        pseudonym, returned here; this request is recorded as `erase` under it. Repeating it erases nothing
        more (all counts 0)."""
        check_ref(patient_ref)
        if args["confirm"] != patient_ref:
            raise Problem("validation-error", "Erasure cannot be undone: repeat the patient reference as "
                          "`confirm=<reference>`.", errors={"confirm": ["must equal the patient reference"]})
        out = erase_patient(_ext().store, current_app.config.get("CAT_PROM_SECRET_KEY"), g.principal.tenant,
                            patient_ref)
        replace_subject(patient_ref, out["audit_pseudonym"])
        return out

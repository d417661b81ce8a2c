"""Patient links: a single-sitting address for the patient's own device (``/take/<token>``)."""
from __future__ import annotations

from flask import g, url_for
from flask.views import MethodView

from ..audit import audited
from ..keys import require
from ..pages import access
from ..schemas import CreateLinkSchema, LinkSchema, ProblemSchema
from ..smorest import Blueprint
from .patients import REF_PARAM, check_ref

blp = Blueprint("links", __name__, url_prefix="/v1/patients",
                description="Single-sitting links for a patient's own device.")


@blp.route("/<string:patient_ref>/links", parameters=[REF_PARAM])
class Links(MethodView):
    @require("patient-app", "clinician")
    @blp.arguments(CreateLinkSchema)
    @blp.response(201, LinkSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="bank-not-found or battery-not-found",
                      content_type="application/problem+json")
    @audited("create")
    def post(self, args, patient_ref):
        """Start a sitting for this patient and return the link that opens it (and nothing else).

        The patient's device gets only this link, never an API key: the link's token opens the
        questionnaire page of this one sitting, expires (`expires_at`), can be revoked, and is
        stored only as a hash, so the `url` is shown this once."""
        check_ref(patient_ref)
        return access.create_link(g.principal, patient_ref, args,
                                  lambda token: url_for("take.show", token=token, _external=True)), 201


@blp.route("/<string:patient_ref>/links/<string:link_id>", parameters=[REF_PARAM])
class Link(MethodView):
    @require("patient-app", "clinician")
    @blp.response(200, LinkSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="link-not-found",
                      content_type="application/problem+json")
    @audited("update")
    def delete(self, patient_ref, link_id):
        """Revoke the link (idempotent): it then opens only a page saying so."""
        check_ref(patient_ref)
        return access.revoke_link(g.principal, patient_ref, link_id)

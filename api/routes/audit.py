"""The audit log of the caller's tenant (admins): who read or changed which patient's data."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app, g, request, url_for
from flask.views import MethodView
from marshmallow import fields, validate

from ..audit import ACTIONS
from ..keys import require
from ..problems import Problem
from ..schemas import REF_RE, FullMatch, ProblemSchema, Strict
from ..schemas_clinical import UtcDateTime
from ..smorest import Blueprint

blp = Blueprint("audit", __name__, url_prefix="/v1/audit",
                description="The audit log: every read or change of a patient's data (admins).")


class AuditQuerySchema(Strict):
    patient = fields.String(validate=FullMatch(REF_RE), metadata={"description": "Only this patient's rows."})
    key = fields.String(validate=validate.Length(min=1, max=40), metadata={"description": "Only this API key's rows."})
    action = fields.String(validate=validate.OneOf(ACTIONS))
    since = UtcDateTime(metadata={"description": "Rows at or after this time (ISO 8601; UTC if no offset)."})
    until = UtcDateTime(metadata={"description": "Rows before this time."})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.Integer(validate=validate.Range(min=0, max=2**63 - 1), metadata={
        "description": "Continue after this row id (the previous page's `next_after`)."})


class AuditEntrySchema(ma.Schema):
    id = fields.Integer()
    at = fields.String()
    key_id = fields.String(allow_none=True, metadata={"description": "The API key (also behind a web session)."})
    role = fields.String(metadata={"description": "The key's role, or `link` for a patient's link token."})
    web_session_id = fields.String(allow_none=True, metadata={"description": "A clinician's browser sign-in."})
    link_id = fields.String(allow_none=True, metadata={"description": "The link token used, for `role: link`."})
    action = fields.String(metadata={"description": " | ".join(ACTIONS)})
    patient = fields.String(allow_none=True, metadata={
        "description": "The patient reference; `erased:<hash>` after erasure; null when the request named no "
                       "patient (e.g. a sitting that was not found)."})
    method = fields.String()
    route = fields.String(metadata={"description": "The route template, never the URL."})
    status = fields.Integer(metadata={"description": "The HTTP status of the response."})
    request_id = fields.String()


class AuditPageSchema(ma.Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema))
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "Pass as `after` for the next page; null on the last page."})
    next = fields.String(allow_none=True, metadata={"description": "The next page's address, or null."})


@blp.route("")
class Audit(MethodView):
    @require("admin")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditPageSchema)
    @blp.alt_response(422, schema=ProblemSchema, content_type="application/problem+json",
                      description="validation-error: a query parameter is not valid")
    def get(self, args):
        """Rows of your tenant's audit log, oldest first: who (key, role, web session or link token) did what
        (`read`, `create`, `update`, `delete`, `export`, `erase`) to which patient's data, through which route,
        when, with what status. Append-only; never holds answers. Paginated by `after`."""
        if args.get("since") and args.get("until") and args["since"] >= args["until"]:
            raise Problem("validation-error", "`since` must be before `until`.", errors={"since": ["after until"]})
        limit = args["limit"]
        rows = current_app.extensions["cat_prom"].store.list_audit(
            g.principal.tenant, patient=args.get("patient"), key_id=args.get("key"), action=args.get("action"),
            since=args.get("since"), until=args.get("until"), limit=limit + 1, after_id=args.get("after"))
        more = len(rows) > limit
        rows = rows[:limit]
        next_after = rows[-1].id if more else None
        nxt = None
        if more:
            query = {k: v for k, v in request.args.items() if k != "after"}
            nxt = url_for("audit.Audit", **query, after=next_after)
        return {"entries": [_entry(r) for r in rows], "next_after": next_after, "next": nxt}


def _entry(r) -> dict:
    return {"id": r.id, "at": r.at.isoformat(), "key_id": r.key_id, "role": r.role, "web_session_id": r.web_session_id,
            "link_id": r.link_id, "action": r.action, "patient": r.patient_ref, "method": r.method, "route": r.route,
            "status": r.status, "request_id": r.request_id}

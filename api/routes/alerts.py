"""Alerts for clinicians: list, read, acknowledge, and the alert rate per 100 finished sittings."""
from __future__ import annotations

import datetime as dt

from flask import current_app, g
from flask.views import MethodView

from ..audit import audited
from ..keys import require
from ..problems import Problem
from ..schemas import ProblemSchema
from ..schemas_clinical import (AcknowledgeSchema, AlertListSchema, AlertSchema, AlertsQuerySchema,
                                AlertStatsQuerySchema, AlertStatsSchema)
from ..smorest import Blueprint

blp = Blueprint("alerts", __name__, url_prefix="/v1/alerts",
                description="Alerts raised when a sitting finishes (clinicians only; never patient apps).")
_PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}


def _svc():
    return current_app.extensions["cat_prom"].clinical


@blp.route("")
class Alerts(MethodView):
    @require("clinician")
    @blp.arguments(AlertsQuerySchema, location="query")
    @blp.response(200, AlertListSchema)
    @audited("read", many="alerts")
    def get(self, args):
        """The tenant's alerts, newest first; filter by status, patient, domain (bank id), rule and time."""
        args = dict(args)
        args["bank_id"] = args.pop("domain", None)
        return _svc().alerts(g.principal.tenant, args)


@blp.route("/stats")
class AlertStats(MethodView):
    @require("clinician", "admin")
    @blp.arguments(AlertStatsQuerySchema, location="query")
    @blp.response(200, AlertStatsSchema)
    def get(self, args):
        """Alert fatigue check: alerts opened per 100 finished sittings, by rule, over a period (default the
        last 30 days)."""
        until = args.get("until") or _svc().now()
        since = args.get("since") or until - dt.timedelta(days=30)
        if since >= until:
            raise Problem("validation-error", "`since` must be before `until`.", errors={"since": ["after until"]})
        return _svc().alert_stats(g.principal.tenant, since, until)


@blp.route("/<string:alert_id>")
class Alert(MethodView):
    @require("clinician")
    @blp.response(200, AlertSchema)
    @blp.alt_response(404, description="alert-not-found", **_PROBLEM)
    @audited("read")
    def get(self, alert_id):
        """One alert with the values its rule used."""
        return _svc().alert(g.principal.tenant, alert_id)


@blp.route("/<string:alert_id>/acknowledge")
class Acknowledge(MethodView):
    @require("clinician")
    @blp.arguments(AcknowledgeSchema)
    @blp.response(200, AlertSchema)
    @blp.alt_response(404, description="alert-not-found", **_PROBLEM)
    @blp.alt_response(409, description="alert-acknowledged: already acknowledged with another note", **_PROBLEM)
    @audited("update")
    def post(self, args, alert_id):
        """Acknowledge an open alert with a note; the key that does it is recorded. It re-opens (as a new alert)
        only if the patient worsens again by the MID. Repeating the same acknowledgement is harmless."""
        return _svc().acknowledge(g.principal, alert_id, args["note"])

"""The tenant's clinical settings (admins): alert rules, certainty, and per-bank defaults."""
from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView

from ..keys import require
from ..schemas import ProblemSchema
from ..schemas_clinical import (AlertSettingsSchema, BankSettingsSchema, PutAlertSettingsSchema,
                                PutBankSettingsSchema, SettingsSchema)
from ..smorest import Blueprint

blp = Blueprint("settings", __name__, url_prefix="/v1/settings",
                description="Clinic-wide settings of the clinical layer (admin role).")


def _svc():
    return current_app.extensions["cat_prom"].clinical


@blp.route("")
class Settings(MethodView):
    @require("admin")
    @blp.response(200, SettingsSchema)
    def get(self):
        """The alert rule settings and, per bank, the clinic's default acceptable level and MID."""
        return _svc().settings(g.principal.tenant)


@blp.route("/alerts")
class AlertSettings(MethodView):
    @require("admin")
    @blp.arguments(PutAlertSettingsSchema)
    @blp.response(200, AlertSettingsSchema)
    def put(self, args):
        """Which rules run, the certainty a rule needs to fire (default 0.8), how many abandoned sittings in a
        row raise an alert, and ρ of the GAS T-score (default 0.3)."""
        return _svc().put_alert_settings(g.principal, args)


@blp.route("/banks/<string:bank_id>")
class BankSettings(MethodView):
    @require("admin")
    @blp.arguments(PutBankSettingsSchema)
    @blp.response(200, BankSettingsSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="bank-not-found",
                      content_type="application/problem+json")
    def put(self, args, bank_id):
        """The clinic's default acceptable level for a bank (used where a patient has none) and its MID."""
        return _svc().put_bank_settings(g.principal, bank_id, args)

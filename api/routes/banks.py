"""What can be administered: item banks and batteries."""
from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView

from ..keys import ROLES, require
from ..problems import Problem
from ..schemas import BankListSchema
from ..smorest import Blueprint
from .health import JSON_OBJECT

blp = Blueprint("banks", __name__, url_prefix="/v1/banks",
                description="Item banks and batteries. Researchers and admins also get item parameters.")

PARAMETER_ROLES = ("researcher", "admin")


@blp.route("")
class Banks(MethodView):
    @require(*ROLES)
    @blp.response(200, BankListSchema)
    def get(self):
        """List banks and batteries (any role)."""
        reg = current_app.extensions["cat_prom"].registry
        return {"banks": [reg.summaries[b] for b in sorted(reg.summaries)],
                "batteries": [reg.batteries[b].to_dict() for b in sorted(reg.batteries)]}


@blp.route("/<string:bank_id>")
class Bank(MethodView):
    @require(*ROLES)
    @blp.response(200)
    @blp.doc(responses={"200": JSON_OBJECT})
    def get(self, bank_id):
        """One bank. Patient apps and clinicians get the items' stems and options; researchers and
        admins get the full bank document with item parameters (format cat-prom-bank/1)."""
        reg = current_app.extensions["cat_prom"].registry
        if bank_id not in reg.banks:
            raise Problem("bank-not-found", f"No item bank {bank_id!r}; GET /v1/banks lists the banks.")
        if g.principal.role in PARAMETER_ROLES:
            return reg.full_docs[bank_id]
        return reg.public_docs[bank_id]

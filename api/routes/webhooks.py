"""Webhook endpoints of the tenant (admins): where alert events are POSTed, signed."""
from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView

from ..keys import require
from ..schemas import ProblemSchema
from ..schemas_clinical import (CreateWebhookSchema, DeliveriesQuerySchema, DeliverySchema, PatchWebhookSchema,
                                WebhookSchema)
from ..smorest import Blueprint

blp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks",
                description="Alert delivery to the clinic's systems (admin role). The `cat-prom worker` process "
                            "POSTs each new alert, signed with X-Cat-Prom-Signature; see docs/api.md.")
_PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}


def _svc():
    return current_app.extensions["cat_prom"].clinical


@blp.route("")
class Webhooks(MethodView):
    @require("admin")
    @blp.response(200, WebhookSchema(many=True))
    def get(self):
        """The tenant's endpoints (never their secrets)."""
        return _svc().webhooks(g.principal.tenant)

    @require("admin")
    @blp.arguments(CreateWebhookSchema)
    @blp.response(201, WebhookSchema)
    def post(self, args):
        """Register an endpoint; the signing `secret` is in this response only."""
        return _svc().create_webhook(g.principal, args)


@blp.route("/<string:endpoint_id>")
class Webhook(MethodView):
    @require("admin")
    @blp.arguments(PatchWebhookSchema)
    @blp.response(200, WebhookSchema)
    @blp.alt_response(404, description="webhook-not-found", **_PROBLEM)
    def patch(self, args, endpoint_id):
        """Change the URL or description, or switch the endpoint off (`active: false`)."""
        return _svc().update_webhook(g.principal, endpoint_id, args)


@blp.route("/<string:endpoint_id>/deliveries")
class Deliveries(MethodView):
    @require("admin")
    @blp.arguments(DeliveriesQuerySchema, location="query")
    @blp.response(200, DeliverySchema(many=True))
    @blp.alt_response(404, description="webhook-not-found", **_PROBLEM)
    def get(self, args, endpoint_id):
        """The delivery log: the newest attempts to this endpoint (status code or error, duration)."""
        return _svc().webhook_deliveries(g.principal.tenant, endpoint_id, args["limit"])

"""API keys of the caller's tenant (admins)."""
from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView

from .. import keys
from ..keys import require
from ..problems import Problem
from ..schemas import CreateKeySchema, KeySchema, ProblemSchema
from ..smorest import Blueprint

blp = Blueprint("keys", __name__, url_prefix="/v1/keys", description="API keys of your tenant (admin role).")


def _db():
    return current_app.extensions["cat_prom"].store


@blp.route("")
class Keys(MethodView):
    @require("admin")
    @blp.response(200, KeySchema(many=True))
    def get(self):
        """List the tenant's keys (never the secrets), with expiry and last use (to the minute)."""
        return keys.list_keys(_db(), tenant=g.principal.tenant)

    @require("admin")
    @blp.arguments(CreateKeySchema)
    @blp.response(201, KeySchema)
    def post(self, args):
        """Create a key in the tenant; the secret `key` is in this response only. Optional expiry:
        `expires_at` or `expires_in_days`; an expired key gets 401 saying so."""
        try:
            expires = keys.key_expiry(args.get("expires_at"), args.get("expires_in_days"))
        except ValueError as e:
            raise Problem("validation-error", f"The key's expiry is not valid: {e}.",
                          errors={"expires_at": [str(e)]}) from None
        return keys.create_key(_db(), role=args["role"], name=args["name"], tenant=g.principal.tenant,
                               pepper=current_app.config.get("CAT_PROM_SECRET_KEY"), expires_at=expires)


@blp.route("/<string:key_id>")
class Key(MethodView):
    @require("admin")
    @blp.response(200, KeySchema)
    @blp.alt_response(404, schema=ProblemSchema, description="key-not-found",
                      content_type="application/problem+json")
    @blp.alt_response(409, schema=ProblemSchema, description="own-key: a key cannot revoke itself",
                      content_type="application/problem+json")
    def delete(self, key_id):
        """Revoke a key (idempotent). The key making the request cannot revoke itself."""
        if key_id == g.principal.key_id:
            raise Problem("own-key", "This is the key making the request; revoking it would lock you out. "
                                     "Revoke it with another admin key or with `cat-prom keys revoke ID`.")
        row = keys.revoke_key(_db(), key_id, tenant=g.principal.tenant)
        if row is None:
            raise Problem("key-not-found", "No key with this id in your tenant.")
        return row

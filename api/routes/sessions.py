"""CAT sessions: start, answer, read, abandon."""
from __future__ import annotations

from flask import current_app, g, url_for
from flask.views import MethodView

from ..audit import audited, in_transaction
from ..keys import require
from ..limits import per_key
from ..schemas import AnswerSchema, CreateSessionSchema, ProblemSchema, SessionSchema
from ..smorest import Blueprint

# Schema instances, not classes: webargs would build a new schema object on every request
# (~0.1 ms of the answer route's CPU). Loading with a shared instance is thread-safe.
_CREATE_ARGS = CreateSessionSchema()
_ANSWER_ARGS = AnswerSchema()

blp = Blueprint("sessions", __name__, url_prefix="/v1/sessions",
                description="Adaptive sittings. Patient apps create and answer them; clinicians read them.")


def _svc():
    return current_app.extensions["cat_prom"].sessions


@blp.route("")
class Sessions(MethodView):
    @require("patient-app")
    @per_key("sessions")
    @blp.arguments(_CREATE_ARGS)
    @blp.response(201, SessionSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="bank-not-found or battery-not-found",
                      content_type="application/problem+json")
    @blp.alt_response(429, schema=ProblemSchema, content_type="application/problem+json",
                      description="too-many-requests: this key started too many sessions "
                                  "(CAT_PROM_RATE_LIMIT_SESSIONS); see Retry-After",
                      headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}})
    @audited("create")
    def post(self, args):
        """Start a sitting: one or more banks, or a battery. Returns the first question."""
        view = _svc().create(g.principal.tenant, args, audit=in_transaction(201))
        return view, 201, {"Location": url_for("sessions.Session", session_id=view["id"])}


@blp.route("/<string:session_id>")
class Session(MethodView):
    @require("patient-app", "clinician")
    @blp.response(200, SessionSchema)
    @audited("read")
    def get(self, session_id):
        """Status, answers so far, the current question, and scores once finished."""
        return _svc().get(g.principal.tenant, session_id)

    @require("patient-app")
    @blp.response(204)
    @audited("update")
    def delete(self, session_id):
        """Abandon the sitting (it takes no more answers; idempotent). The session is not erased: GET
        still returns it, with status `abandoned`, to its tenant."""
        _svc().abandon(g.principal.tenant, session_id)
        return "", 204


@blp.route("/<string:session_id>/responses")
class Responses(MethodView):
    @require("patient-app")
    @per_key("answers")
    @blp.arguments(_ANSWER_ARGS)
    @blp.response(200, SessionSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="session-not-found",
                      content_type="application/problem+json")
    @blp.alt_response(409, schema=ProblemSchema, content_type="application/problem+json",
                      description="seq-conflict, seq-out-of-order, item-not-offered, item-already-answered, "
                                  "session-finished, session-abandoned, bank-changed")
    @blp.alt_response(410, schema=ProblemSchema, description="session-expired",
                      content_type="application/problem+json")
    @blp.alt_response(429, schema=ProblemSchema, content_type="application/problem+json",
                      description="too-many-requests: this key posted too many answers "
                                  "(CAT_PROM_RATE_LIMIT_ANSWERS); see Retry-After",
                      headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}})
    @audited("update")
    def post(self, args, session_id):
        """Answer (or decline) the current question; returns the next question or the results.

        Retrying an identical request returns the same body; a different answer to a question
        already answered is 409 (`seq-conflict`)."""
        return _svc().answer(g.principal.tenant, session_id, args, audit=in_transaction(200))

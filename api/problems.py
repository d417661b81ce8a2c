"""RFC 9457 problem details: one error format for every failure.

Every error response is ``application/problem+json`` with a stable ``type``
URI (``urn:cat-prom:problem:<code>``), the HTTP ``status``, a short ``title``,
a human ``detail`` that says what was wrong and how to fix it, the
``request_id`` to quote in a support request, and for validation errors
``errors``: ``{field: [messages]}``.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from cat_prom import errors as engine_errors
from cat_prom.jsonable import jsonable

log = logging.getLogger("cat_prom.api")

TYPE_PREFIX = "urn:cat-prom:problem:"
MEDIA_TYPE = "application/problem+json"

#: code -> (status, title). The codes (and so the type URIs) are stable.
PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed-json": (400, "Malformed JSON body"),
    "bad-request": (400, "Bad request"),
    "unauthorized": (401, "Missing or invalid API key"),
    "forbidden": (403, "Not allowed for this API key's role"),
    "not-found": (404, "Not found"),
    "session-not-found": (404, "Session not found"),
    "bank-not-found": (404, "Item bank not found"),
    "battery-not-found": (404, "Battery not found"),
    "key-not-found": (404, "API key not found"),
    "link-not-found": (404, "Patient link not found"),
    "alert-not-found": (404, "Alert not found"),
    "webhook-not-found": (404, "Webhook endpoint not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "request-timeout": (408, "Request timeout"),
    "conflict": (409, "Conflict"),
    "gone": (410, "Gone"),
    "seq-conflict": (409, "A different answer was already given to this question"),
    "seq-out-of-order": (409, "Answer does not match the question now offered"),
    "item-not-offered": (409, "Item is not the question now offered"),
    "item-already-answered": (409, "Item already answered"),
    "session-finished": (409, "Session finished"),
    "bank-changed": (409, "Item bank changed since the session started"),
    "own-key": (409, "A key cannot revoke itself"),
    "alert-acknowledged": (409, "Alert already acknowledged"),
    "session-abandoned": (409, "Session abandoned"),
    "session-expired": (410, "Session expired"),
    "payload-too-large": (413, "Request body too large"),
    "uri-too-long": (414, "URI too long"),
    "header-fields-too-large": (431, "Request header fields too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "validation-error": (422, "Invalid request"),
    "value-out-of-range": (422, "Response value out of range"),
    "unknown-item": (422, "Unknown item"),
    "invalid-response": (422, "Invalid response"),
    "invalid-design": (422, "Invalid design"),
    "invalid-bank": (422, "Invalid item bank"),
    "invalid-battery": (422, "Invalid battery"),
    "invalid-data": (422, "Invalid data"),
    "calibration-error": (422, "Calibration not possible on these data"),
    "engine-error": (422, "The engine could not process this request"),
    "no-acceptable-level": (422, "No acceptable level to stop at"),
    # FHIR interface (/fhir, rendered as OperationOutcome: api/fhir/outcome.py)
    "fhir-invalid-resource": (400, "Not a valid FHIR resource"),
    "questionnaire-not-found": (404, "Questionnaire not found"),
    "fhir-signature-invalid": (422, "Adaptive questionnaire state not issued by this server"),
    "fhir-questionnaire-mismatch": (422, "The request names different questionnaires"),
    "fhir-answer-not-offered": (422, "Answer to a question that was not asked"),
    "fhir-answer-not-an-option": (422, "Answer is not one of the question's options"),
    "fhir-answers-changed": (422, "An earlier answer was changed"),
    "fhir-answer-missing": (422, "An earlier question has no answer"),
    "fhir-sitting-unfinished": (422, "The sitting is not finished"),
    "too-many-requests": (429, "Too many requests"),
    "internal-error": (500, "Internal server error"),
    "service-unavailable": (503, "Service unavailable"),
}

_STATUS_CODES = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
    406: "not-acceptable", 408: "request-timeout", 409: "conflict", 410: "gone", 413: "payload-too-large", 414: "uri-too-long",
    415: "unsupported-media-type", 422: "validation-error", 429: "too-many-requests", 431: "header-fields-too-large",
    500: "internal-error", 503: "service-unavailable",
}


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, code: str, detail: str, *, status: int | None = None, errors: dict | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(detail)
        self.code = code
        self.status = status or PROBLEMS[code][0]
        self.title = PROBLEMS.get(code, (0, code))[1]
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


def problem_response(code: str, detail: str, *, status: int | None = None, errors=None, headers=None,
                     extra=None) -> Response:
    status = status or PROBLEMS.get(code, (500,))[0]
    body = {
        "type": TYPE_PREFIX + code,
        "title": PROBLEMS.get(code, (0, code))[1],
        "status": status,
        "detail": detail,
    }
    try:
        body["instance"] = request.path
    except RuntimeError:  # pragma: no cover - outside a request
        pass
    rid = g.get("request_id") if g else None
    if rid:
        body["request_id"] = rid
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    resp = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


#: The ONE mapping from an engine error's ``CatPromError.code`` to a problem code (a key of
#: PROBLEMS). Every code in cat_prom/errors.py is here on purpose (tests/api/test_errors.py checks):
#: answer errors are the client's (409/422); a bank, battery, data or calibration error reaching a
#: request is about the service's own files or a request's data, named as such, never as an answer.
ENGINE_PROBLEMS: dict[str, str] = {
    "value-out-of-range": "value-out-of-range",
    "unknown-item": "unknown-item",
    "item-not-offered": "item-not-offered",
    "item-already-answered": "item-already-answered",
    "session-finished": "session-finished",
    "invalid-response": "invalid-response",
    "invalid-design": "invalid-design",
    "invalid-bank": "invalid-bank",
    "invalid-battery": "invalid-battery",
    "invalid-data": "invalid-data",
    "calibration-error": "calibration-error",
    "cat-prom-error": "engine-error",
    "design-needs-goal": "no-acceptable-level",
    "invalid-goal": "validation-error",
    "invalid-rules": "validation-error",
}


def engine_problem(e: engine_errors.CatPromError) -> Problem:
    """The problem for an engine error (its ``code`` through :data:`ENGINE_PROBLEMS`)."""
    extra = {"fields": _fields(e.fields)} if e.fields else {}
    return Problem(ENGINE_PROBLEMS.get(e.code, "engine-error"), e.message, **extra)


def _fields(fields: dict) -> dict:
    out = {}
    for k, v in fields.items():
        try:
            out[k] = jsonable(v)
        except TypeError:  # an object the engine put in for context: its text
            out[k] = str(v)
    return out


def _flatten_messages(messages) -> dict:
    """webargs puts errors under the location ({"json": {...}}); clients want the fields."""
    if isinstance(messages, dict) and len(messages) == 1:
        (loc, inner), = messages.items()
        if loc in ("json", "query", "view_args", "headers", "form") and isinstance(inner, dict):
            return inner
    return messages if isinstance(messages, dict) else {"_schema": messages}


def register(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(e: Problem):
        return problem_response(e.code, e.detail, status=e.status, errors=e.errors, headers=e.headers,
                                extra=e.extra)

    @app.errorhandler(engine_errors.CatPromError)
    def _engine(e: engine_errors.CatPromError):
        return _problem(engine_problem(e))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        status = e.code or 500
        data = getattr(e, "data", None) or {}
        headers = {}
        if status == 405:
            allow = e.get_response().headers.get("Allow")
            if allow:
                headers["Allow"] = allow
        if "messages" in data or "errors" in data:
            errors = _flatten_messages(data.get("errors") or data.get("messages"))
            if status == 400:
                return problem_response("malformed-json", "The request body is not valid JSON.", errors=errors)
            return problem_response(
                "validation-error", "The request has invalid or missing fields; see `errors` for each one.",
                status=422 if status == 422 else status, errors=errors)
        code = _STATUS_CODES.get(status, "bad-request" if status < 500 else "internal-error")
        detail = {
            404: "No resource at this URL. The API is under /v1; see /v1/openapi.json.",
            405: f"{request.method} is not allowed on this URL.",
            413: "The request body is too large.",
            415: "Send the body as JSON with `Content-Type: application/json`.",
        }.get(status, e.description or PROBLEMS.get(code, (0, "Error"))[1])
        if status >= 500:
            log.error("http %s on %s request_id=%s", status, _route(), g.get("request_id"))
        return problem_response(code, detail, status=status, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout

        if isinstance(e, (OperationalError, PoolTimeout)) or (isinstance(e, DBAPIError) and e.connection_invalidated):
            log.error("database unavailable on %s request_id=%s: %s", _route(), g.get("request_id"),
                      type(e).__name__)
            return problem_response("service-unavailable", "The database is unavailable; retry shortly.",
                                    headers={"Retry-After": "1"})
        # Log the exception type and traceback frames only: exception messages may quote patient input.
        log.error("unexpected %s on %s request_id=%s", type(e).__name__, _route(), g.get("request_id"),
                  exc_info=scrubbed_exc_info(e))
        return problem_response("internal-error", "An unexpected error occurred; quote the request_id if you "
                                                  "report it.")


#: Details of the errors the HTTP front end (api.serving) answers itself, before the app runs.
_SERVER_DETAILS = {
    400: "The request is not valid HTTP/1.1 (malformed request line, method, header or chunked body).",
    408: "The request (head or body) was not received in time; send it again.",
    413: "The request body is larger than the server accepts.",
    414: "The request target (path and query) is longer than the server accepts (4094 bytes).",
    431: "The request has too many header fields, or one that is too large.",
    500: "An unexpected error occurred before the service could answer; it has been logged.",
}


def server_problem(status: int) -> bytes:
    """The problem+json body of an error the HTTP front end (:mod:`api.serving`) answers itself,
    before the app: no ``instance`` nor ``request_id``, and nothing quoted from the request
    (it can carry a patient reference)."""
    code = _STATUS_CODES.get(status, "bad-request" if status < 500 else "internal-error")
    title = PROBLEMS[code][1]
    return json.dumps({"type": TYPE_PREFIX + code, "title": title, "status": status,
                       "detail": _SERVER_DETAILS.get(status, title)}).encode()


def _route() -> str:
    try:
        rule = request.url_rule
        return f"{request.method} {rule.rule if rule else '<no route>'}"
    except RuntimeError:  # pragma: no cover
        return "<no request>"


def scrubbed_exc_info(e: BaseException):
    """Exception info with the message removed (it could contain patient data)."""
    return (type(e), type(e)("<message withheld>") if _can_build(type(e)) else None, e.__traceback__)


def _can_build(cls) -> bool:
    try:
        cls("<message withheld>")
        return True
    except Exception:
        return False

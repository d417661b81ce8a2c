"""Errors on ``/fhir`` routes as OperationOutcome, never problem+json.

Every error of the service is raised and rendered in one place (:mod:`api.problems`); for a request
under ``/fhir`` an ``after_request`` hook turns that problem document into an OperationOutcome with
the same HTTP status and headers. So routing errors (404, 405), body errors (400, 413, 415),
authentication (401, 403) and unexpected failures (500, 503) all come out as FHIR, and a problem
code keeps one meaning across both APIs: it is the ``details.coding`` of the issue
(system ``urn:cat-prom:problem``), ``diagnostics`` is the problem's ``detail``.
"""
from __future__ import annotations

import json

from flask import Response, request

from ..problems import MEDIA_TYPE, TYPE_PREFIX
from .codes import FHIR_MEDIA_TYPE

#: problem code -> OperationOutcome issue type (http://hl7.org/fhir/issue-type); others by status
ISSUE_TYPES = {
    "malformed-json": "structure", "fhir-invalid-resource": "structure", "unauthorized": "login",
    "forbidden": "forbidden", "payload-too-large": "too-costly", "unsupported-media-type": "not-supported",
    "method-not-allowed": "not-supported", "not-acceptable": "not-supported", "too-many-requests": "throttled",
    "service-unavailable": "transient", "internal-error": "exception", "bank-changed": "conflict",
    "fhir-signature-invalid": "security", "fhir-answer-not-offered": "business-rule",
    "fhir-answers-changed": "business-rule", "fhir-answer-missing": "required",
    "fhir-answer-not-an-option": "code-invalid", "fhir-questionnaire-mismatch": "business-rule",
    "validation-error": "invalid", "fhir-sitting-unfinished": "incomplete",
}
_BY_STATUS = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              409: "conflict", 410: "deleted", 413: "too-costly", 415: "not-supported", 422: "business-rule",
              429: "throttled", 503: "transient"}


def outcome(code: str, status: int, detail: str, title: str = "", expression=None, severity: str = "error") -> dict:
    issue = {"severity": "fatal" if status >= 500 else severity,
             "code": ISSUE_TYPES.get(code) or _BY_STATUS.get(status, "processing" if status < 500 else "exception"),
             "details": {"coding": [{"system": "urn:cat-prom:problem", "code": code}], **({"text": title} if title else {})},
             "diagnostics": detail}
    if expression:
        issue["expression"] = [str(e) for e in expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def is_fhir_path(path: str) -> bool:
    return path == "/fhir" or path.startswith("/fhir/")


def to_operation_outcome(resp: Response) -> Response:
    """``after_request``: a problem+json reply to a /fhir request becomes an OperationOutcome."""
    if resp.mimetype != MEDIA_TYPE or not is_fhir_path(request.path):
        return resp
    try:
        body = json.loads(resp.get_data())
    except ValueError:  # pragma: no cover - problems.py always writes JSON
        return resp
    t = str(body.get("type", ""))
    code = t[len(TYPE_PREFIX):] if t.startswith(TYPE_PREFIX) else "internal-error"
    detail = str(body.get("detail", ""))
    if code == "not-found" and request.url_rule is None:
        detail = "No FHIR endpoint at this URL; GET /fhir/metadata lists what this server supports."
    if body.get("request_id"):
        detail += f" (request_id {body['request_id']})"
    oo = outcome(code, resp.status_code, detail, str(body.get("title", "")), body.get("fhir_expression"))
    resp.set_data(json.dumps(oo, ensure_ascii=False))
    resp.mimetype = FHIR_MEDIA_TYPE
    return resp

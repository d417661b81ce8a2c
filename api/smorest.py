"""flask-smorest glue: a parser that reuses the body the app already parsed strictly, and an
OpenAPI document that tells the truth about what the code sends and accepts."""
from __future__ import annotations

import http

import flask_smorest
from apispec import BasePlugin
from flask import g
from flask_smorest.utils import prepare_response
from webargs import core
from webargs.flaskparser import FlaskParser

from .problems import MEDIA_TYPE
from .schemas import ProblemSchema, ResponseValue


class StrictJSONParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422
    # Query strings are held to their schema like bodies: our query schemas are Strict (unknown
    # parameters raise, 422) where webargs would silently drop them.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "querystring": None, "query": None}

    def _raw_load_json(self, req):
        body = g.get("json_body", core.missing)
        return body

    def load_querystring(self, req, schema):
        """A scalar query parameter given twice (`?limit=1&limit=2`) is an error, not "the first one"."""
        args = req.args
        repeated = sorted(k for k in args if len(args.getlist(k)) > 1 and not _is_list_field(schema, k))
        if repeated:
            from marshmallow import ValidationError
            raise ValidationError({k: ["Give this query parameter at most once."] for k in repeated})
        return super().load_querystring(req, schema)


def _is_list_field(schema, name) -> bool:
    from marshmallow import fields
    f = getattr(schema, "fields", {}).get(name)
    return isinstance(f, (fields.List, fields.Tuple))


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictJSONParser()


class SchemaExtrasPlugin(BasePlugin):
    """Merge a schema class's ``OPENAPI_EXTRA`` (e.g. ``oneOf`` for "exactly one of `banks` or
    `battery`") into its component: marshmallow's ``validates_schema`` rules are invisible to apispec."""

    def schema_helper(self, name, definition, **kwargs):
        schema = kwargs.get("schema")
        extra = getattr(schema, "OPENAPI_EXTRA", None)
        return dict(extra) if extra else None

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Document on every operation the statuses any request can get before its route runs
        (the front end, :mod:`api.serving`; authentication; the per-address limit, :mod:`api.limits`),
        so that a client generated from the document, and schemathesis, expect them."""
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            statuses = FRONT_END_STATUSES
            if operation.get("security") != []:
                statuses = {**statuses, **AUTH_STATUSES}
            for status, description in statuses.items():
                responses.setdefault(str(status), _problem_response(description))


#: Statuses every request can get from the front end (``api.serving``) or the app's body reader.
FRONT_END_STATUSES = {
    400: "bad-request or malformed-json: the request or its body is not well-formed (e.g. a bad chunk size)",
    408: "request-timeout: the head or body did not arrive within CAT_PROM_REQUEST_TIMEOUT",
    413: "payload-too-large: the body is over CAT_PROM_MAX_BODY_BYTES (chunked bodies included)",
    414: "uri-too-long: the request target is over 4094 bytes",
    431: "header-fields-too-large: a header field over 8190 bytes, or more than 100 fields",
}
#: Statuses of every route that needs a key.
AUTH_STATUSES = {
    401: "unauthorized: no key, or an unknown, revoked or expired one",
    403: "forbidden: the key's role may not do this",
    429: "too-many-requests: this address failed authentication too often (CAT_PROM_RATE_LIMIT_AUTH_FAILURES); "
         "see Retry-After",
}


def _problem_response(description: str) -> dict:
    response = {"description": description,
                "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if description.startswith("too-many-requests"):
        response["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return response


def _response_value_property(self, field, ret, **kwargs):
    if isinstance(field, ResponseValue):
        return {"oneOf": [{"type": "integer", "minimum": -2**53, "maximum": 2**53},
                          {"type": "string", "maxLength": 200}]}
    return {}


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *, extra_plugins=None, **options):
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), SchemaExtrasPlugin()], **options)
        self.ma_plugin.converter.add_attribute_function(_response_value_property)

    def _register_error_handlers(self):
        """Errors are rendered by :mod:`api.problems` (RFC 9457), registered by the app factory."""

    def _register_responses(self):
        """As flask-smorest's, but error responses are documented as ``application/problem+json``,
        the media type :mod:`api.problems` sends (flask-smorest would say ``application/json``)."""
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, MEDIA_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

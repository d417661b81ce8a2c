"""flask-smorest glue: a parser that reuses the body the app already parsed strictly."""
from __future__ import annotations

import flask_smorest
from flask import g
from webargs import core
from webargs.flaskparser import FlaskParser

from .schemas import ProblemSchema


class StrictJSONParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req):
        body = g.get("json_body", core.missing)
        return body


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictJSONParser()


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self):
        """Errors are rendered by :mod:`api.problems` (RFC 9457), registered by the app factory."""

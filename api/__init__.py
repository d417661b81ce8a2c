"""cat-prom's HTTP service: a thin Flask app over the CAT engine.

``create_app(config=None)`` builds the app: configuration from the environment
(:mod:`api.config`), storage (:mod:`api.store`, migrated at start), the banks
(:mod:`api.registry`), one blueprint per resource, RFC 9457 errors
(:mod:`api.problems`) and the OpenAPI document at ``/v1/openapi.json``.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import time
from dataclasses import dataclass

from flask import Flask, g, request

from cat_prom import __version__
from cat_prom.errors import InvalidDataError
from cat_prom.jsonfile import parse_json

from .config import load_config
from .pages import FORM_BLUEPRINTS
from .problems import Problem, register as register_problems
from .registry import Registry
from .clinical import ClinicalService
from .service import SessionService
from .store import SessionStore

__all__ = ["create_app"]

API_VERSION = __version__  # /v1/openapi.json and /v1/docs show the package version
# A client's X-Request-ID is logged, so only an opaque one is taken (a UUID or 16-64 hex digits):
# anything else could carry a patient reference into the log, and the server makes its own.
_RID_RE = re.compile(r"^(?:[0-9a-fA-F]{16,64}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
_BODY_METHODS = ("POST", "PUT", "PATCH")
log = logging.getLogger("cat_prom.api")
access_log = logging.getLogger("cat_prom.api.access")


@dataclass
class Extension:
    store: SessionStore
    registry: Registry
    sessions: SessionService
    clinical: ClinicalService


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        try:
            record.request_id = g.get("request_id", "-")
        except RuntimeError:
            record.request_id = "-"
        return True


def _setup_logging(level: str) -> None:
    root = logging.getLogger("cat_prom")
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if getattr(root, "_cat_prom_configured", False):
        return
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    root.propagate = False
    root._cat_prom_configured = True


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    settings = load_config(app.instance_path, config)
    app.config.update(settings)
    app.config.update(
        API_TITLE="cat-prom",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings["CAT_PROM_MAX_BODY_BYTES"],
        API_SPEC_OPTIONS={
            "info": {"description": "Computerised adaptive testing of patient-reported outcomes. Every route "
                                    "except /healthz, /readyz and the reference needs `Authorization: Bearer "
                                    "<api key>`. Errors are RFC 9457 application/problem+json. The FHIR R4 interface "
                                    "under /fhir (SDC adaptive questionnaires, $next-question, Observations) is "
                                    "not part of this document: see docs/fhir.md and GET /fhir/metadata.",
                     "license": {"name": "MIT"}},
            "security": [{"bearerAuth": []}],
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                              "description": "An API key: cpk_..."}}},
        },
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    _setup_logging(settings["CAT_PROM_LOG_LEVEL"])
    try:
        os.makedirs(app.instance_path, exist_ok=True)
    except OSError:  # pragma: no cover - read-only install; the DB URL must then point elsewhere
        pass

    store = SessionStore(settings["CAT_PROM_DATABASE_URL"], schema=settings["CAT_PROM_DATABASE_SCHEMA"],
                  sqlite_synchronous=settings["CAT_PROM_SQLITE_SYNCHRONOUS"],
                  pg_synchronous_commit=settings["CAT_PROM_PG_SYNCHRONOUS_COMMIT"])
    if settings["CAT_PROM_AUTO_MIGRATE"]:
        store.migrate()
    registry = Registry.load(settings["CAT_PROM_BANKS_DIR"])
    clinical = ClinicalService(store, registry)
    ext = Extension(store=store, registry=registry,
                    sessions=SessionService(store, registry, settings["CAT_PROM_SESSION_TTL"], clinical=clinical),
                    clinical=clinical)
    app.extensions["cat_prom"] = ext

    from . import audit, fhir, headers, limits, pages
    from .routes import alerts, banks, goals, health, keys, links, patients, report, reference, sessions
    from .routes import audit as audit_routes
    from .routes import settings as settings_routes
    from .routes import simulations, webhooks
    from .smorest import Api

    api = Api(app)
    register_problems(app)
    headers.init_app(app)
    limits.init_app(app)
    audit.init_app(app)
    for blp in (health.blp, banks.blp, sessions.blp, patients.blp, report.blp, links.blp, goals.blp, alerts.blp,
                settings_routes.blp, webhooks.blp, keys.blp, simulations.blp, audit_routes.blp):
        api.register_blueprint(blp)
    app.register_blueprint(reference.bp)
    fhir.init_app(app)  # /fhir: FHIR R4 + SDC adaptive questionnaires (api/fhir/, docs/fhir.md)
    pages.register(app)
    _install_hooks(app)
    return app


def _install_hooks(app: Flask) -> None:
    @app.before_request
    def _before():
        g.t0 = time.perf_counter()
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if _RID_RE.match(rid) else secrets.token_hex(16)  # as uuid4().hex, without the UUID object
        if (request.method in _BODY_METHODS and request.routing_exception is None
                and request.blueprint not in FORM_BLUEPRINTS):  # pages post HTML forms, not JSON
            _parse_body()

    @app.after_request
    def _after(resp):
        resp.headers["X-Request-ID"] = g.get("request_id", "-")
        if access_log.isEnabledFor(logging.INFO):
            rule = request.url_rule.rule if request.url_rule else "<no route>"
            dur_ms = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
            # The route template, never the URL: paths can carry patient references.
            access_log.info("%s %s %s %.1fms", request.method, rule, resp.status_code, dur_ms)
        return resp


def _parse_body() -> None:
    """Parse a JSON body strictly once; anything else is 400/413/415 before a view runs."""
    length = request.content_length
    limit = request.max_content_length
    if length is not None and limit is not None and length > limit:
        raise Problem("payload-too-large", f"The body is {length} bytes; the limit is {limit}.")
    mimetype = request.mimetype or ""
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise Problem("unsupported-media-type", "Send the body as JSON with `Content-Type: application/json`"
                      + (f"; got {mimetype!r}." if mimetype else "; no Content-Type was given."))
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise Problem("unsupported-media-type", "JSON bodies must be UTF-8.")
    data = request.get_data(cache=True)
    if len(data) > (limit or len(data)):  # chunked bodies have no Content-Length
        raise Problem("payload-too-large", f"The body is larger than {limit} bytes.")
    if not data.strip():
        raise Problem("malformed-json", "The request body is empty; send a JSON object.")
    try:
        # The engine's strict reader: duplicate keys, NaN/Infinity, overlong numbers, deep nesting,
        # NUL characters and non-UTF-8 text are all refused, with the position.
        g.json_body = parse_json(data, source="request body", error=InvalidDataError)
    except InvalidDataError as e:
        raise Problem("malformed-json", "The request body is not accepted: " + e.message.removeprefix("request body: "),
                      **({"fields": {"field": e.fields["field"]}} if "field" in e.fields else {})) from None

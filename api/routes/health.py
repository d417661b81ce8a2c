"""Liveness and readiness probes (no API key needed)."""
from __future__ import annotations

from flask import current_app

from ..schemas import ReadySchema
from ..service import engine_available
from ..smorest import Blueprint

#: Documents a JSON object body for responses declared without a schema.
JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}

blp = Blueprint("health", __name__, description="Liveness and readiness probes (no API key).")


@blp.route("/healthz")
@blp.doc(security=[], responses={"200": JSON_OBJECT})
@blp.response(200)
def healthz():
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.doc(security=[])
@blp.response(200, ReadySchema, description="Ready. A bank file that failed validation does not make the service "
              "unready (the other banks are served); it is listed in `bank_errors`.")
@blp.alt_response(503, schema=ReadySchema, description="Not ready: database unreachable, no banks loaded or the "
                  "engine not importable (the same body as 200, not a problem).")
def readyz():
    """Ready to serve: database reachable, banks loaded, engine importable."""
    ext = current_app.extensions["cat_prom"]
    checks = {}
    ok = True
    try:
        ext.store.ping()
        checks["database"] = "ok"
    except Exception as e:  # report, never raise
        checks["database"] = f"unreachable ({type(e).__name__})"
        ok = False
    reg = ext.registry
    checks["banks"] = f"{len(reg.banks)} loaded" if reg.ready else "none loaded"
    ok = ok and reg.ready
    engine = engine_available()
    checks["engine"] = "ok" if engine is None else f"unavailable ({engine})"
    ok = ok and engine is None
    body = {"status": "ready" if ok else "not ready", "checks": checks}
    if reg.errors:
        body["bank_errors"] = reg.errors
    return body, 200 if ok else 503

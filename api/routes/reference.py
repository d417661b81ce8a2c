"""The human-readable API reference: a self-contained page (no CDN) rendering /v1/openapi.json."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect

STATIC = Path(__file__).resolve().parent.parent / "static"
bp = Blueprint("reference", __name__)


def _asset(name: str, mimetype: str) -> Response:
    resp = Response((STATIC / name).read_bytes(), mimetype=mimetype)
    resp.headers["Cache-Control"] = "public, max-age=300"
    # frame-ancestors: no other site may frame the page (clickjacking); nosniff etc.: api.headers
    resp.headers["Content-Security-Policy"] = ("default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    return resp


@bp.get("/v1/docs")
def page():
    return _asset("reference.html", "text/html")


@bp.get("/v1/docs/reference.js")
def script():
    return _asset("reference.js", "text/javascript")


@bp.get("/")
def root():
    return redirect("/v1/docs", code=302)


@bp.get("/docs")
def docs_alias():
    return redirect("/v1/docs", code=302)

"""Security headers on every response of the app.

* ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` everywhere.
* ``Cache-Control: no-store`` on every response that does not set its own caching (the API
  reference page and its script do): sessions, answers, scores and patient histories must not be
  kept by a browser, an app's HTTP cache or a proxy. Simpler and safer than listing the routes
  that carry patient data, and it costs nothing: no API response is worth caching.
* HTML pages (:mod:`api.pages.headers`) add their ``Content-Security-Policy`` to these.
* The reference page sets its own ``Content-Security-Policy`` (``frame-ancestors 'none'``), see
  :mod:`api.routes.reference`; ``X-Frame-Options: DENY`` says the same to older browsers.

The errors the HTTP front end answers itself carry the same headers (:mod:`api.serving`).
"""
from __future__ import annotations

from flask import Flask, Response

ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def init_app(app: Flask) -> None:
    @app.after_request
    def _security_headers(resp: Response) -> Response:
        for name, value in ALWAYS.items():
            resp.headers.setdefault(name, value)
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

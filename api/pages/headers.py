"""Security headers for every HTML page (one place).

- ``Content-Security-Policy``: no script at all (``script-src 'none'``, pages need none), styles
  and images from this origin only (charts are SVG images in ``data:`` URLs), forms post only
  here, no framing (``frame-ancestors 'none'``), no ``<base>`` tricks.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (a link token in the URL
  never leaks to another site), ``X-Frame-Options: DENY`` for old browsers: :data:`api.headers.ALWAYS`.
- ``Cache-Control: no-store``: pages show answers or scores, so no copy in any cache or in the
  browser's back/forward history (going back re-asks the server, which shows the current question).
"""
from __future__ import annotations

from ..headers import ALWAYS

CSP = ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def page_headers(resp):
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers.update(ALWAYS)  # nosniff, no-referrer, DENY: the same as every response (api.headers)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp

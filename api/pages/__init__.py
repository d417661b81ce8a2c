"""Pages for people: the patient's questionnaire (``/take/<token>``) and the clinician's pages.

Server-rendered Jinja2 templates (``api/pages/templates``), one stylesheet
(``/pages/static/pages.css``), no script and no CDN: every page works with JavaScript off
(plain forms, POST-redirect-GET). Every form carries a CSRF token (Flask-WTF's
``CSRFProtect``, checked in each page blueprint's ``before_request``; the JSON API, authorised
by bearer keys, is not a form target and is not checked). Security headers for every page
come from :func:`api.pages.headers.page_headers`.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
#: blueprints whose POSTs are HTML forms (CSRF-checked) rather than JSON bodies
FORM_BLUEPRINTS = frozenset({"take", "clinic"})


class FormCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session (it holds the page forms' CSRF token), opened without building
    its signing serializer when the request carries no cookie at all, as every API request does
    (Flask's own interface builds one per request, ≈ 5 % of a cheap request's CPU); what it
    returns is the same empty session Flask's would."""

    def open_session(self, app, request):
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


def _form_secret(app: Flask) -> str:
    cfg = app.config
    if cfg.get("CAT_PROM_FORM_SECRET"):
        return cfg["CAT_PROM_FORM_SECRET"]
    if cfg.get("CAT_PROM_SECRET_KEY"):
        return hmac.new(cfg["CAT_PROM_SECRET_KEY"].encode(), b"cat-prom page forms", hashlib.sha256).hexdigest()
    # One key for every worker of this instance: created once, atomically, in the instance folder.
    path = Path(app.instance_path) / "form-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(value)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if another worker won the race; then use theirs
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value


def register(app: Flask) -> None:
    secure = app.config["CAT_PROM_COOKIE_SECURE"]
    app.config.update(
        SECRET_KEY=_form_secret(app),
        SESSION_COOKIE_NAME="cp_form",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_CHECK_DEFAULT=False,  # page blueprints call csrf.protect(); bearer-key API routes are no form target
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the browser's form cookie: a patient may pause for hours
        # Flask-WTF's HTTPS check compares the Referer with the host, but the pages send no referrer
        # (Referrer-Policy: no-referrer, so a link token never leaks); the token and the SameSite
        # cookie carry the protection.
        WTF_CSRF_SSL_STRICT=False,
    )
    app.session_interface = FormCookieSessions()
    csrf.init_app(app)
    from . import clinic, take
    app.register_blueprint(take.bp)
    app.register_blueprint(clinic.bp)

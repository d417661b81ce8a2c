"""Patient link tokens on the ``/fhir`` routes (issue 11: "a link token scoped to one patient").

A link (``cpl_...``, :mod:`api.pages.access`) opens one patient's one sitting. Through FHIR it
may run ``$next-question`` for that sitting's Questionnaire only (the link's battery, or its one
bank) and store the finished sitting for the link's own patient; it never reads records. The
token is verified by :func:`api.pages.access.resolve_link` (the same check as ``/take/<token>``):
unknown, revoked or expired -> 401; a live link on a route or Questionnaire it does not cover -> 403.
"""
from __future__ import annotations

import functools

from flask import current_app, g, request

from ..keys import Principal, require
from ..pages import access
from ..problems import Problem

#: the role a live link token acts with (not an API key role: no key has it)
LINK_ROLE = "patient-link"


def link_questionnaire_id(link) -> str | None:
    """The FHIR Questionnaire id of the link's sitting: ``battery.<id>``, or ``bank.<id>`` for a
    one-bank sitting; None for a sitting of several banks without a battery (no Questionnaire)."""
    rec = current_app.extensions["cat_prom"].store.get_session(link.session_id, link.tenant)
    if rec is None:
        return None
    if rec.battery_id:
        return f"battery.{rec.battery_id}"
    return f"bank.{rec.bank_ids[0]}" if len(rec.bank_ids) == 1 else None


def _bearer_link_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token.startswith(access.LINK_PREFIX) else None


def require_key_or_link(*roles: str, link: bool):
    """``require(*roles)`` for API keys; a link token is verified and, when ``link`` is true, let
    through with ``g.principal`` (role :data:`LINK_ROLE`, tenant and id of the link) and
    ``g.fhir_link`` (the link record) set; otherwise it gets 403."""
    def deco(fn):
        keyed = require(*roles)(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            token = _bearer_link_token()
            if token is None:
                g.fhir_link = None
                return keyed(*args, **kwargs)
            state = access.resolve_link(token)
            if state.link is None:
                why = {"revoked": "has been revoked", "expired": "has expired"}.get(state.reason, "is not valid")
                raise Problem("unauthorized", f"This patient link {why}.",
                              headers={"WWW-Authenticate": 'Bearer realm="cat-prom", error="invalid_token"'})
            if not link:
                raise Problem("forbidden", "A patient link can only run $next-question for its own questionnaire "
                                           "and store its own sitting; it reads no records.")
            rec = state.link
            g.principal = Principal(rec.id, rec.tenant, LINK_ROLE, f"patient link {rec.id}")
            g.fhir_link = rec
            return fn(*args, **kwargs)
        wrapper._roles = roles + ((LINK_ROLE,) if link else ())
        return wrapper
    return deco


def check_link_questionnaire(qid: str) -> None:
    """403 unless the request's link (if any) was made for Questionnaire ``qid``."""
    rec = g.get("fhir_link")
    if rec is None:
        return
    own = link_questionnaire_id(rec)
    if qid != own:
        raise Problem("forbidden", "This patient link is for another questionnaire"
                      + (f" ({own}); use that one." if own else "; its sitting has no FHIR Questionnaire."),
                      fhir_expression=["QuestionnaireResponse.questionnaire"])


def link_patient(ref: str | None) -> str | None:
    """The patient to store a sitting for: the link's own (a different subject -> 403); without a
    link, ``ref`` unchanged."""
    rec = g.get("fhir_link")
    if rec is None:
        return ref
    if ref is not None and ref != rec.patient_ref:
        raise Problem("forbidden", "This patient link stores sittings for its own patient only: "
                      "QuestionnaireResponse.subject names another patient.",
                      fhir_expression=["QuestionnaireResponse.subject"])
    return rec.patient_ref

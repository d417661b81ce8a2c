"""The audit log's one hook: who read or changed which patient's data, when, through which route.

A view that touches patient data is declared with :func:`audited` (the action) directly above its
``def``; the patient it concerns comes from the route's ``patient_ref`` argument, from the
``patient`` field of the dict the view returns (``many=<key>`` for lists of items, e.g. alerts),
or from :func:`subject` where a view learns it otherwise (FHIR, pages, link tokens). One
``after_request`` hook then appends one row per patient (one row with no patient when the request
named none, e.g. a 404) with the response's status, in one autocommitted statement.

Requests refused before the view runs (401, 403, 422, 429) touched no patient data and are not
audited; they are in the access log. Rows never carry answers, scores or bodies, and the route is
its template (``/v1/sessions/<string:session_id>``), never the URL. See docs/reliability.md.
"""
from __future__ import annotations

import functools
import re

from flask import Flask, current_app, g, request

from .schemas import REF_RE
from .store import utcnow

ACTIONS = ("read", "create", "update", "delete", "export", "erase")
_REF = re.compile(REF_RE)


class _Audit:
    __slots__ = ("action", "refs", "link", "aliases", "committed")

    def __init__(self, action: str):
        self.action = action
        self.refs: list[str] = []
        self.link = None
        self.aliases: dict[str, str] = {}
        self.committed = False  # the row was written with the change it records (InTransaction)


class InTransaction:
    """The request's audit row, to be written in the transaction of the change it records.

    A view whose change is one store transaction passes ``audit.in_transaction(status)`` down to
    the store, which writes :meth:`rows` with the change and calls :meth:`committed` once it has
    committed; the ``after_request`` hook then writes nothing more. The row records ``status``, the
    status the view answers with once the change is stored. Saves the hook's separate commit (and
    on PostgreSQL the separate statement). Made only inside an audited view, with a known actor."""

    __slots__ = ("_audit", "_base")

    def __init__(self, a: _Audit, base: dict):
        self._audit, self._base = a, base

    def rows(self, patient_ref: str) -> list[dict]:
        return [{**self._base, "patient_ref": patient_ref}]

    def committed(self, patient_ref: str) -> None:
        subject(patient_ref)
        self._audit.committed = True


def audited(action: str, *, many: str | None = None):
    """View decorator (innermost, directly above ``def``): this view reads or changes patient data."""
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}; got {action!r}")

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            g.audit = _Audit(action)
            ref = kwargs.get("patient_ref")
            if isinstance(ref, str):
                subject(ref)
            out = fn(*args, **kwargs)
            body = out[0] if isinstance(out, tuple) else out  # (body, status[, headers])
            if isinstance(body, dict):
                if many is None:
                    subject(body.get("patient"))
                else:
                    for item in body.get(many) or ():
                        subject(item.get("patient"))
            return out
        wrapper._audit = action
        return wrapper
    return deco


def subject(ref) -> None:
    """Name the patient this request concerns (once per patient; invalid references are ignored)."""
    a = g.get("audit")
    if a is not None and isinstance(ref, str) and _REF.fullmatch(ref):
        ref = a.aliases.get(ref, ref)
        if ref not in a.refs:
            a.refs.append(ref)


def replace_subject(ref: str, alias: str) -> None:
    """After erasure: this request's own row names the patient by the pseudonym the log now uses."""
    a = g.get("audit")
    if a is not None:
        a.aliases[ref] = alias
        a.refs = [alias if r == ref else r for r in a.refs]


def by_link(link) -> None:
    """The request acts with a patient's link token (no API key): its id is the actor."""
    a = g.get("audit")
    if a is not None:
        a.link = link
        subject(link.patient_ref)


def init_app(app: Flask) -> None:
    app.after_request(_record)


def _base(a: _Audit, status: int) -> dict | None:
    """Every column of the request's row but the patient; None when nobody was identified."""
    p = g.get("principal")
    if a.link is not None:
        actor = {"tenant": a.link.tenant, "key_id": None, "role": "link", "link_id": a.link.id}
    elif p is not None:
        actor = {"tenant": p.tenant, "key_id": p.key_id, "role": p.role, "link_id": None}
    else:
        return None
    return {**actor, "at": utcnow(), "web_session_id": g.get("web_session_id"), "action": a.action,
            "method": request.method, "route": request.url_rule.rule if request.url_rule else "<no route>",
            "status": status, "request_id": g.get("request_id", "-")}


def in_transaction(status: int) -> InTransaction | None:
    """This request's audit row for the store to write with the change (see :class:`InTransaction`);
    None outside an audited request, and then the hook writes the row as usual."""
    a = g.get("audit")
    if a is None or a.committed:
        return None
    base = _base(a, status)
    return None if base is None else InTransaction(a, base)


def _record(resp):
    a = g.get("audit")
    if a is None or a.committed:
        return resp
    base = _base(a, resp.status_code)
    if base is None:  # nobody was identified, so nothing was read
        return resp
    current_app.extensions["cat_prom"].store.append_audit(
        [{**base, "patient_ref": r} for r in a.refs] or [{**base, "patient_ref": None}])
    return resp

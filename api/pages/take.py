"""The patient's questionnaire: ``/take/<token>``, one question at a time, no JavaScript needed.

GET shows where the sitting is (the current question, or the summary once finished); POST
takes one answer (or a decline) for the question it names (``seq`` + ``item_id``) and redirects
back to GET (POST-redirect-GET). Reload, back button and double submit are safe: the page
carries the question's ``seq``, and the service's ``seq`` idempotency accepts a repeated
identical answer and refuses a different one, after which the page simply shows the current
question. The same link opens the same sitting on any device.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from cat_prom.errors import CatPromError

from ..audit import audited, by_link
from ..problems import Problem
from . import access, csrf
from .headers import page_headers

bp = Blueprint("take", __name__, template_folder="templates", static_folder="static",
               static_url_path="/pages/static")
bp.after_request(page_headers)

#: why a link opens nothing -> (HTTP status, message for the patient)
_CLOSED = {
    "unknown": (404, "This link is not valid. Please check that you copied the whole link, or ask your clinic "
                     "for a new one."),
    "revoked": (410, "This link has been withdrawn by your clinic. Please ask them for a new link if you "
                     "still need to answer the questionnaire."),
    "expired": (410, "This link has expired. Please ask your clinic for a new link."),
    "session-expired": (410, "This questionnaire was left unfinished for too long and has closed. Your "
                             "answers so far are saved. Please ask your clinic for a new link."),
    "session-abandoned": (410, "This questionnaire was closed by your clinic. Please ask them for a new link "
                               "if you still need to answer it."),
}
_NOTES = {
    "answered": "That question had already been answered, so your earlier answer was kept. Here is the next "
                "question.",
    "moved": "The questionnaire had already moved on (perhaps on another device or tab). Here is the current "
             "question.",
}


def _ext():
    return current_app.extensions["cat_prom"]


def _closed(reason: str):
    status, message = _CLOSED[reason]
    return render_template("take_closed.html", message=message, title="Questionnaire link"), status


def _open(token: str):
    state = access.resolve_link(token)
    if state.link is None:
        return None, _closed(state.reason)
    by_link(state.link)
    return state.link, None


@bp.errorhandler(CSRFError)
def _csrf_failed(e):
    return render_template("take_closed.html", title="Please try again",
                           message="Your answer could not be saved because the page had been open too long or "
                                   "cookies are blocked. Please go back, reload the page and answer again."), 400


@bp.get("/take/<token>")
@audited("read")
def show(token: str):
    link, closed = _open(token)
    if closed:
        return closed
    view = _ext().sessions.get(link.tenant, link.session_id)
    return _render(token, view, note=_NOTES.get(request.args.get("note", "")))


def _render(token: str, view: dict, *, note: str | None = None, error: str | None = None, status: int = 200):
    if view["status"] in ("expired", "abandoned"):
        return _closed("session-" + view["status"])
    if view["status"] == "finished":
        return render_template("take_done.html", title="Thank you", domains=_summary(view)), status
    q = view["question"]
    return render_template("take_question.html", title=f"Question {q['seq']}", q=q, token=token, note=note,
                           error=error), status


def _find_item(bank_ids: list[str], item_id: str):
    """(bank, item) of the session's bank holding ``item_id``, or (None, None)."""
    for b in bank_ids:
        bank = _ext().registry.banks.get(b)
        if bank is not None:
            try:
                return bank, bank.item(item_id)
            except CatPromError:
                continue
    return None, None


def _summary(view: dict) -> list[dict]:
    """What was recorded, domain by domain: each question's text and the answer given (or skipped)."""
    by_bank: dict[str, dict] = {}
    for b in view["banks"]:
        bank = _ext().registry.banks.get(b)
        if bank is not None:
            by_bank[b] = {"name": bank.domain or bank.name, "answers": []}
    for ans in view.get("answers", []):
        bank, item = _find_item(view["banks"], ans["item_id"])
        if bank is None:
            continue
        if ans.get("declined"):
            shown = None
        else:
            shown = next((o["label"] for o in item.options() if o["value"] == ans["value"]), str(ans["value"]))
        by_bank[bank.id]["answers"].append({"stem": item.stem, "answer": shown})
    return list(by_bank.values())


@bp.post("/take/<token>")
@audited("update")
def answer(token: str):
    csrf.protect()
    link, closed = _open(token)
    if closed:
        return closed
    svc = _ext().sessions
    form = request.form
    try:
        seq = int(form.get("seq", ""))
    except ValueError:
        abort(400)
    item_id = form.get("item_id", "")
    if request.form.get("action") == "decline":
        args = {"seq": seq, "item_id": item_id, "declined": True}
    else:
        value = _option_value(svc.get(link.tenant, link.session_id)["banks"], item_id,
                              form.get("value"))
        if value is None:
            view = svc.get(link.tenant, link.session_id)
            q = view.get("question")
            if q and q["seq"] == seq:
                return _render(token, view, status=422,
                               error="Please choose one of the answers, or press “Skip this question”.")
            return redirect(url_for("take.show", token=token, note="moved"), 303)
        args = {"seq": seq, "item_id": item_id, "value": value}
    try:
        svc.answer(link.tenant, link.session_id, args)
    except Problem as e:
        if e.code == "seq-conflict":
            return redirect(url_for("take.show", token=token, note="answered"), 303)
        if e.code in ("seq-out-of-order", "session-finished", "item-not-offered", "session-expired",
                      "session-abandoned"):
            return redirect(url_for("take.show", token=token, note="moved"), 303)
        raise
    except CatPromError:
        return redirect(url_for("take.show", token=token, note="moved"), 303)
    return redirect(url_for("take.show", token=token), 303)


def _option_value(bank_ids: list[str], item_id: str, raw: str | None):
    """The option value (as the bank defines it: int or string) whose text form the browser sent."""
    bank, item = _find_item(bank_ids, item_id)
    if raw is None or item is None:
        return None
    return next((o["value"] for o in item.options() if str(o["value"]) == raw), None)

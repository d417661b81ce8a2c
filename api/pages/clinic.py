"""Clinician pages: sign-in with a clinician key (exchanged once for a session cookie), the
triage list of patients, and the forms of the report (acknowledge an alert, set an acceptable
level). Every view calls the clinical service; no clinical logic lives here."""
from __future__ import annotations

import functools

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from ..audit import audited, subject
from ..problems import Problem
from ..routes.patients import check_ref
from . import access, charts, csrf
from .report import MAX_SITTINGS
from .headers import page_headers

bp = Blueprint("clinic", __name__, template_folder="templates", url_prefix="/clinic")
bp.after_request(page_headers)
ALERT_FILTERS = {"all": "All patients", "open": "With open alerts", "none": "Without open alerts"}
PAGE_SIZE = 50
SPARK_POINTS = 20  #: the latest sittings a sparkline shows


def _ext():
    return current_app.extensions["cat_prom"]


@bp.before_request
def _csrf():
    if request.method == "POST":
        csrf.protect()


@bp.errorhandler(CSRFError)
def _csrf_failed(e):
    return render_template("clinic_message.html", title="Form expired",
                           message="The form could not be sent (it was open too long, or cookies are blocked). "
                                   "Go back, reload the page and try again."), 400


def signed_in(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        p = access.web_principal(request.cookies.get(access.COOKIE_NAME))
        if p is None:
            return redirect(url_for("clinic.sign_in_form", next=request.full_path if request.method == "GET"
                                    else None), 303)
        g.principal = p
        return view(*args, **kwargs)
    return wrapper


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("clinic.patients")


# ------------------------------------------------------------------------------ sign-in
@bp.get("/sign-in")
def sign_in_form():
    return render_template("clinic_sign_in.html", title="Sign in", next=request.args.get("next", ""), error=None)


@bp.post("/sign-in")
def sign_in():
    got = access.sign_in(request.form.get("key", ""))
    if got is None:
        return render_template("clinic_sign_in.html", title="Sign in", next=request.form.get("next", ""),
                               error="That is not a valid clinician key. Check it and try again."), 401
    value, expires = got
    resp = redirect(_safe_next(request.form.get("next")), 303)
    resp.set_cookie(access.COOKIE_NAME, value, expires=expires, httponly=True, samesite="Lax", path="/",
                    secure=current_app.config["CAT_PROM_COOKIE_SECURE"])
    return resp


@bp.post("/sign-out")
def sign_out():
    access.sign_out(request.cookies.get(access.COOKIE_NAME))
    resp = redirect(url_for("clinic.sign_in_form"), 303)
    resp.delete_cookie(access.COOKIE_NAME, path="/", httponly=True, samesite="Lax",
                       secure=current_app.config["CAT_PROM_COOKIE_SECURE"])
    return resp


# ------------------------------------------------------------------------ patient list
@bp.get("/patients")
@signed_in
@audited("read")
def patients():
    which = request.args.get("alerts", "all")
    if which not in ALERT_FILTERS:
        which = "all"
    tenant = g.principal.tenant
    triage = _ext().clinical.triage(tenant, 10_000, 0)
    rows = [r for r in triage["patients"]
            if which == "all" or (which == "open") == (r["open_alerts"] > 0)][:PAGE_SIZE]
    for r in rows:
        subject(r["patient"])
        r["sparks"] = _sparklines(tenant, r["patient"])
    return render_template("clinic_patients.html", title="Patients", rows=rows, filters=ALERT_FILTERS,
                           which=which, total=triage["total"], shown=len(rows), page_size=PAGE_SIZE)


def _sparklines(tenant: str, patient: str) -> list[dict]:
    """Per domain: the T-score of each finished sitting, oldest first, as a sparkline; latest value and band."""
    body = _ext().sessions.patient_results(tenant, patient, MAX_SITTINGS, 0)  # oldest first
    series: dict[str, dict] = {}
    for s in body["sessions"][-SPARK_POINTS:]:
        for r in s["results"] or []:
            d = series.setdefault(r["bank_id"], {"domain": r.get("domain") or r["bank_id"], "values": []})
            scored = r.get("status") == "scored"
            d["values"].append(r.get("t_score") if scored else None)
            d["latest"] = r.get("t_score") if scored else None
            d["band"] = r.get("band") if scored else None
    out = []
    for bank_id, d in series.items():
        alt = ", ".join("not scored" if v is None else f"{v:.0f}" for v in d["values"])
        out.append({"bank_id": bank_id, "domain": d["domain"], "latest": d["latest"], "band": d["band"],
                    "uri": charts.sparkline_uri(d["values"]), "alt": f"T-scores oldest to newest: {alt}"})
    return out


# ------------------------------------------------------------------------ report forms
@bp.post("/patients/<patient_ref>/alerts/<alert_id>/acknowledge")
@signed_in
@audited("update")
def acknowledge(patient_ref: str, alert_id: str):
    check_ref(patient_ref)
    note = request.form.get("note", "").strip()[:1000]
    if not note:  # as in the API: an acknowledgement says what was done
        return redirect(url_for("report.Report", patient_ref=patient_ref, done="note-needed") + "#alerts", 303)
    alert = _ext().clinical.alert(g.principal.tenant, alert_id)
    if alert["patient"] != patient_ref:
        raise Problem("alert-not-found", "No alert with this id for this patient.")
    try:
        _ext().clinical.acknowledge(g.principal, alert_id, note)
    except Problem as e:
        if e.code != "alert-acknowledged":
            raise
    return redirect(url_for("report.Report", patient_ref=patient_ref, done="acknowledged") + "#alerts", 303)


@bp.post("/patients/<patient_ref>/goals/<bank_id>")
@signed_in
@audited("update")
def set_goal(patient_ref: str, bank_id: str):
    check_ref(patient_ref)
    form = request.form
    args = {"agreed_by": form.get("agreed_by", "clinician"), "note": form.get("note", "").strip()[:1000]}
    if args["agreed_by"] not in ("patient", "clinician", "both"):
        args["agreed_by"] = "clinician"
    try:
        t = float(form.get("t_score", ""))
    except ValueError:
        t = None
    if t is None or not 0 <= t <= 120:
        return redirect(url_for("report.Report", patient_ref=patient_ref, done="goal-invalid") + "#goals", 303)
    args["t_score"] = t
    _ext().clinical.put_acceptable(g.principal, patient_ref, bank_id, args)
    return redirect(url_for("report.Report", patient_ref=patient_ref, done="goal-saved") + "#goals", 303)


@bp.errorhandler(Problem)
def _problem_page(e: Problem):
    return render_template("clinic_message.html", title=e.title, message=e.detail), e.status


# ---------------------------------------------------------------- personal goals (GAS)
GAS_LEVELS = ("-2", "-1", "0", "1", "2")


def _back(patient_ref: str, done: str, anchor: str = "gas"):
    return redirect(url_for("report.Report", patient_ref=patient_ref, done=done) + "#" + anchor, 303)


def _number(raw: str | None):
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return raw  # the schema refuses it with its own message


@bp.post("/patients/<patient_ref>/personal-goals")
@signed_in
@audited("create")
def create_personal_goal(patient_ref: str):
    """A new GAS goal from the report's form, validated by the API's own schema."""
    import marshmallow as ma

    from ..schemas_clinical import CreatePersonalGoalSchema
    check_ref(patient_ref)
    form = request.form
    body = {"title": form.get("title", "").strip(),
            "levels": {k: form.get(f"level_{k}", "").strip() for k in GAS_LEVELS}}
    weight = _number(form.get("weight"))
    if weight is not None:
        body["weight"] = weight
    try:
        args = CreatePersonalGoalSchema().load(body)
    except ma.ValidationError:
        return _back(patient_ref, "gas-invalid")
    _ext().clinical.create_goal(g.principal, patient_ref, args)
    return _back(patient_ref, "gas-created")


@bp.post("/patients/<patient_ref>/personal-goals/<goal_id>/ratings")
@signed_in
@audited("create")
def rate_personal_goal(patient_ref: str, goal_id: str):
    import marshmallow as ma

    from ..schemas_clinical import RateGoalSchema
    check_ref(patient_ref)
    level = _number(request.form.get("level"))
    body = {"level": int(level) if isinstance(level, float) and level.is_integer() else level,
            "note": request.form.get("note", "").strip()}
    try:
        args = RateGoalSchema().load(body)
    except ma.ValidationError:
        return _back(patient_ref, "gas-invalid")
    _ext().clinical.rate_goal(g.principal, patient_ref, goal_id, args)
    return _back(patient_ref, "gas-rated")

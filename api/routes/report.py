"""One patient's report: HTML for browsers, JSON for apps, PDF for the record."""
from __future__ import annotations

from flask import Response, current_app, redirect, request, url_for
from flask.views import MethodView

from ..audit import audited
from ..pages import access
from ..pages.headers import page_headers
from ..pages.report import build_report
from ..problems import Problem
from ..schemas import ProblemSchema, ReportQuerySchema
from ..smorest import Blueprint
from .patients import REF_PARAM, check_ref

blp = Blueprint("report", __name__, url_prefix="/v1/patients",
                description="A patient's report for clinicians (HTML, JSON or PDF).")
_DONE = {"acknowledged": "Alert acknowledged.",
         "note-needed": "Not acknowledged: write a short note of what was done (e.g. “phoned the patient”).", "goal-saved": "Acceptable level saved.",
         "goal-invalid": "Not saved: give the acceptable level as a T-score between 0 and 120.",
         "gas-created": "Personal goal added.", "gas-rated": "Rating saved.",
         "gas-invalid": "Not saved: a personal goal needs a title and all five levels in words (weight above 0); "
                        "a rating needs a level from −2 to +2."}


def _format() -> str:
    fmt = request.args.get("format")
    if fmt:
        return fmt
    best = request.accept_mimetypes.best_match(["application/json", "text/html"], default="application/json")
    return "html" if best == "text/html" else "json"


@blp.route("/<string:patient_ref>/report", parameters=[REF_PARAM])
class Report(MethodView):
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, description="The report: `text/html`, `application/json` or `application/pdf`.")
    @blp.alt_response(401, schema=ProblemSchema, content_type="application/problem+json",
                      description="No clinician key (a browser without a sign-in is sent to /clinic/sign-in)")
    @audited("read")
    def get(self, args, patient_ref):
        """The patient's report: per domain the T-score over time (severity bands, ±SE, acceptable level,
        changes reaching the MID), the balance of pain, function and side effects against the patient's
        acceptable levels, personal goals with GAS ratings, the latest sitting item by item with stop
        reasons, and open alerts. Needs a clinician key (`Authorization: Bearer`) or a clinician's
        browser sign-in. `format`: `html`, `json` or `pdf` (default: HTML when the client prefers it,
        else JSON)."""
        check_ref(patient_ref)
        fmt = args.get("format") or _format()
        principal = access.clinician_from_request(request)
        if principal is None:
            if fmt == "html":
                return page_headers(redirect(url_for("clinic.sign_in_form", next=request.full_path), 303))
            raise Problem("unauthorized", "Send a clinician key as `Authorization: Bearer <key>`, or sign in at "
                          "/clinic/sign-in.", headers={"WWW-Authenticate": 'Bearer realm="cat-prom"'})
        data = build_report(principal.tenant, patient_ref)
        if fmt == "json":
            resp = current_app.response_class(current_app.json.dumps(data), mimetype="application/json")
        elif fmt == "pdf":
            from ..pages.pdf import report_pdf
            resp = Response(report_pdf(data), mimetype="application/pdf")
            resp.headers["Content-Disposition"] = f'inline; filename="report-{patient_ref}.pdf"'
        else:
            from ..pages.views import report_html
            resp = Response(report_html(data, signed_in=request.cookies.get(access.COOKIE_NAME) is not None,
                                        done=_DONE.get(request.args.get("done", ""))), mimetype="text/html")
        return page_headers(resp)

"""The ``/fhir`` routes: CapabilityStatement, Questionnaires, ``$next-question``, and stored sittings
as QuestionnaireResponse and Observations. Bodies are ``application/fhir+json``; errors are
OperationOutcome (:mod:`api.fhir.outcome`)."""
from __future__ import annotations

import json
import re
import uuid

from flask import Blueprint, Response, current_app, g, request

from ..audit import audited, subject
from ..keys import ROLES
from ..limits import per_key
from ..problems import Problem
from ..schemas import REF_RE
from .codes import FHIR_MEDIA_TYPE, FHIR_ID
from .linkauth import check_link_questionnaire, link_patient, require_key_or_link
from .nextq import NextQuestion, read_request
from .questionnaire import published
from .records import bundle, observations, questionnaire_response
from .capability import capability_statement

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

#: Which API keys may run $next-question and store a sitting. A patient link token (issue 9) may as
#: well, for its own Questionnaire and patient only (:mod:`api.fhir.linkauth`).
NEXT_QUESTION_ROLES = ("patient-app",)
#: Who may read stored sittings as FHIR (as GET /v1/patients/{ref}/results); never a link token.
RECORD_ROLES = ("clinician",)
_PATIENT_REF = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_STORE_REF = re.compile(REF_RE)
#: namespace of stored FHIR sittings' ids: uuid5(_SITTING_NS, "<key id>:<nonce>")
_SITTING_NS = uuid.UUID("5b8f3c1e-6f0a-4c49-9a53-2f7d1f0f4b11")


@bp.url_value_preprocessor
def _per_request(endpoint, values):
    # Runs before the app's before_request body parsing: a QuestionnaireResponse carries its whole sitting.
    request.max_content_length = current_app.config["CAT_PROM_FHIR_MAX_BODY_BYTES"]
    _negotiate()


_JSON_TYPES = {"*/*", "application/*", "application/json", FHIR_MEDIA_TYPE, "application/json+fhir"}
_FORMATS = {"json", "application/json", FHIR_MEDIA_TYPE}


def _negotiate() -> None:
    """JSON only, FHIR R4 only: 406 for ``_format`` or ``Accept`` asking for anything else (XML,
    another ``fhirVersion``); no Accept header, or ``*/*``, is JSON."""
    fmt = request.args.get("_format")
    if fmt is not None and fmt not in _FORMATS:
        raise Problem("not-acceptable", "This server speaks FHIR JSON only (`_format=json`).",
                      fhir_expression=["_format"])
    header = request.headers.get("Accept", "")
    if not header.strip():
        return
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if fields[0].lower() not in _JSON_TYPES or params.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        version = params.get("fhirVersion", params.get("fhirversion"))
        if version is None or version.strip('"').startswith("4.0"):
            return
    raise Problem("not-acceptable", "This server speaks FHIR R4 (fhirVersion=4.0) as application/fhir+json "
                  "only; send `Accept: application/fhir+json`.")


def _ext():
    return current_app.extensions["cat_prom_fhir"]


def fhir_response(resource: dict, status: int = 200) -> Response:
    return Response(json.dumps(resource, ensure_ascii=False), status=status, mimetype=FHIR_MEDIA_TYPE)


@bp.get("/metadata")
def metadata():
    """The CapabilityStatement (public, as FHIR servers publish it)."""
    return fhir_response(capability_statement(_ext().base(), list(_ext().catalog.targets)))


@bp.get("/Questionnaire")
@require_key_or_link(*ROLES, link=False)
def questionnaires():
    ext = _ext()
    base = ext.base()
    wanted_id, wanted_url = request.args.get("_id"), request.args.get("url")
    out = []
    for t in ext.catalog.targets.values():
        q = published(t, base, ext.loaded)
        if (wanted_id and t.id not in wanted_id.split(",")) or (wanted_url and q["url"] != wanted_url.split("|")[0]):
            continue
        out.append(q)
    return fhir_response(bundle(out, base, total=len(out), self_url=request.url))


@bp.get("/Questionnaire/<string:qid>")
@require_key_or_link(*ROLES, link=True)
def questionnaire(qid):
    check_link_questionnaire(qid)
    ext = _ext()
    t = ext.catalog.targets.get(qid)
    if t is None:
        raise Problem("questionnaire-not-found", f"No Questionnaire {qid[:100]!r}; GET /fhir/Questionnaire lists them.")
    return fhir_response(published(t, ext.base(), ext.loaded))


@bp.post("/Questionnaire/$next-question")
@require_key_or_link(*NEXT_QUESTION_ROLES, link=True)
@per_key("answers")  # each call carries one answer: the same per-key limit as the JSON API's answers
def next_question():
    return _next(None)


@bp.post("/Questionnaire/<string:qid>/$next-question")
@require_key_or_link(*NEXT_QUESTION_ROLES, link=True)
@per_key("answers")
def next_question_instance(qid):
    return _next(qid)


def _next(qid):
    ext = _ext()
    qr = read_request(g.get("json_body"))
    nq = NextQuestion(ext.catalog, ext.signer, ext.base())
    check_link_questionnaire(nq.target_for(qr, qid)[0].id)
    # The operation has one output parameter, `return`, a resource: FHIR returns it bare (R4 operations 3.1.0.1.6).
    return fhir_response(nq.step(qr, qid))


@bp.post("/QuestionnaireResponse")
@require_key_or_link(*NEXT_QUESTION_ROLES, link=True)
@per_key("sessions")  # stores a sitting, like starting one
@audited("create")
def questionnaire_response_create():
    """Store a sitting finished through ``$next-question`` (a distinct action, as SDC asks: the
    operation itself stores nothing). The response is verified and replayed exactly like
    ``$next-question``; it must be complete. Its id derives from the sitting's signed nonce, so
    posting it again stores nothing new (200 with the stored sitting)."""
    ext = _ext()
    body = g.get("json_body")
    if not isinstance(body, dict) or body.get("resourceType") != "QuestionnaireResponse":
        raise Problem("fhir-invalid-resource", "POST a QuestionnaireResponse completed through $next-question.")
    qr = read_request(body)
    nq = NextQuestion(ext.catalog, ext.signer, ext.base())
    check_link_questionnaire(nq.target_for(qr, None)[0].id)
    rp = nq.replay(qr)
    if not rp.battery.finished or rp.cq is None:
        raise Problem("fhir-sitting-unfinished", "Only a completed sitting can be stored: keep calling "
                      "$next-question until its status is `completed`.", fhir_expression=["QuestionnaireResponse.status"])
    patient = _patient_of(qr)
    subject(patient)
    sid = str(uuid.uuid5(_SITTING_NS, f"{ext.signer.kid}:{rp.nonce}"))
    svc = current_app.extensions["cat_prom"].sessions
    tenant = g.principal.tenant
    battery_id = rp.target.key if rp.target.kind == "battery" else None
    created = svc.store_finished(tenant, sid, patient, battery_id, rp.battery) is not None
    view = svc.get(tenant, sid)  # 404 when another tenant stored this sitting
    stored = questionnaire_response(view, current_app.extensions["cat_prom"].registry.banks, ext.base())
    if not created and (view["patient"] != patient or stored["item"] != nq.step(qr)["item"]):
        raise Problem("conflict", "This sitting was stored already with other answers or another patient.")
    resp = fhir_response(stored, 201 if created else 200)
    resp.headers["Location"] = f"{ext.base()}/QuestionnaireResponse/{sid}"
    return resp


def _patient_of(qr: dict) -> str:
    """The subject's patient reference; with a link token, the link's patient (another one -> 403)."""
    subj = qr.get("subject") or {}
    ref = subj.get("reference") or ""
    ref = ref.split("/", 1)[1] if ref.startswith("Patient/") else ((subj.get("identifier") or {}).get("value") or "")
    ref = link_patient(ref or None) or ""
    if not _STORE_REF.match(ref):
        raise Problem("validation-error", "A stored sitting needs its patient: set QuestionnaireResponse.subject to "
                      "`Patient/<reference>` (1-128 letters, digits and . _ : @ -, as in the JSON API).",
                      fhir_expression=["QuestionnaireResponse.subject"])
    return ref


@bp.get("/QuestionnaireResponse/<string:sid>")
@require_key_or_link(*RECORD_ROLES, link=False)
@audited("read")
def questionnaire_response_read(sid):
    ext = _ext()
    view = current_app.extensions["cat_prom"].sessions.get(g.principal.tenant, sid)
    subject(view["patient"])
    return fhir_response(questionnaire_response(view, current_app.extensions["cat_prom"].registry.banks, ext.base()))


@bp.get("/Observation/<string:oid>")
@require_key_or_link(*RECORD_ROLES, link=False)
@audited("read")
def observation_read(oid):
    sid, _, k = oid.rpartition(".")
    if not sid or not k.isdigit() or not FHIR_ID.match(oid):
        raise Problem("not-found", "No Observation with this id; Observation ids are <session id>.<domain index>.")
    view = current_app.extensions["cat_prom"].sessions.get(g.principal.tenant, sid)
    subject(view["patient"])
    if view.get("status") != "finished":
        raise Problem("not-found", "This sitting is not finished, so it has no Observations yet.")
    obs = observations(view, current_app.extensions["cat_prom"].registry.banks)
    if int(k) >= len(obs):
        raise Problem("not-found", "This sitting has no domain with that index.")
    return fhir_response(obs[int(k)])


@bp.get("/Observation")
@require_key_or_link(*RECORD_ROLES, link=False)
@audited("read")
def observation_search():
    ref = request.args.get("subject") or request.args.get("patient") or ""
    ref = ref.split("/", 1)[1] if ref.startswith("Patient/") else ref
    if not _PATIENT_REF.match(ref):
        raise Problem("bad-request", "Search Observations by patient: `subject=Patient/<patient reference>` (1-128 "
                                     "letters, digits and . _ : @ -).", fhir_expression=["subject"])
    try:
        count = min(max(int(request.args.get("_count", 20)), 1), 100)
        offset = max(int(request.args.get("_offset", 0)), 0)
    except ValueError:
        raise Problem("bad-request", "`_count` and `_offset` must be integers.") from None
    subject(ref)
    svc = current_app.extensions["cat_prom"].sessions
    page = svc.patient_results(g.principal.tenant, ref, count + 1, offset)["sessions"]
    more = len(page) > count
    banks = current_app.extensions["cat_prom"].registry.banks
    entries = []
    for s in page[:count]:
        entries.extend(observations({**s, "patient": ref}, banks))
    base = _ext().base()
    nxt = f"{base}/Observation?subject=Patient/{ref}&_count={count}&_offset={offset + count}" if more else None
    return fhir_response(bundle(entries, base, next_url=nxt, self_url=request.url))

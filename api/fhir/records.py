"""Sittings from the session store as FHIR: the QuestionnaireResponse and one Observation per domain.

Input is the session view of :class:`api.service.SessionService` (``get``: id, status, patient,
battery, banks, timestamps, ``answers`` and ``results``; ``patient_results``: the finished sittings of
a patient), so a sitting run through the JSON API and one stored from FHIR read the same way.

* ``QuestionnaireResponse/{session id}``: status ``in-progress`` / ``completed`` / ``stopped``
  (abandoned or expired), the answered items (coded as ``$next-question`` codes them) and, once
  finished, the read-only score groups.
* ``Observation/{session id}.{domain index}``: per domain of a finished sitting, ``valueQuantity`` the
  T-score, components θ, SE(θ), severity band and stop reason, ``method`` the CAT and estimator,
  ``derivedFrom`` the QuestionnaireResponse. A domain that is not scored (no item answered) has
  ``dataAbsentReason`` (``asked-declined`` when its questions were declined, ``not-asked`` when none
  could be asked) and no number at all.
"""
from __future__ import annotations

from .codes import (CS_BANK, CS_OBS_CATEGORY, DECLINED, FHIR_ID, UCUM, answer_codings,
                    bank_codings, coding, data_absent, score_coding)
from .questionnaire import absent_reason, is_scored, score_answers

CS_METHOD = "urn:cat-prom:fhir:method"
PATIENT_SYSTEM = "urn:cat-prom:patient"
_QR_STATUS = {"in_progress": "in-progress", "finished": "completed", "abandoned": "stopped", "expired": "stopped"}


def subject(patient_ref: str) -> dict:
    """``Patient/<ref>`` when the reference is a FHIR id; otherwise a logical reference by identifier."""
    ident = {"system": PATIENT_SYSTEM, "value": patient_ref}
    if FHIR_ID.match(patient_ref):
        return {"reference": f"Patient/{patient_ref}", "identifier": ident}
    return {"identifier": ident}


class _Missing:
    """A bank no longer loaded: enough to name it."""

    def __init__(self, bank_id: str, result: dict | None):
        self.id = bank_id
        self.name = (result or {}).get("domain") or bank_id
        self.codes = ()
        self.items = ()

    def item(self, item_id):
        return None


def _bank(banks: dict, bank_id: str, result=None):
    return banks.get(bank_id) or _Missing(bank_id, result)


def _answer_item(bank, item_id: str, declined: bool, value) -> dict:
    it = {"linkId": f"{bank.id}/{item_id}"}
    item = None
    try:
        item = bank.item(item_id)
    except Exception:  # an item id the bank no longer has
        item = None
    if item is not None:
        it["text"] = item.stem
    if declined:
        it["answer"] = [{"valueCoding": dict(DECLINED)}]
    elif item is not None and value in item.values:
        it["answer"] = [{"valueCoding": answer_codings(bank, item)[list(item.values).index(value)]}]
    else:
        it["answer"] = [{"valueString": str(value)}]
    return it


def questionnaire_response(view: dict, banks: dict, base: str, tenant: str | None = None) -> dict:
    bank_ids = list(view.get("banks") or [])
    results = view.get("results") or []
    by_bank = {r.get("bank_id"): r for r in results}
    # which bank each answer belongs to: the results when finished, else the first bank that has the item
    owner = {}
    for r in results:
        for it in r.get("items") or []:
            owner.setdefault(it["item_id"], r["bank_id"])
    items = []
    for a in view.get("answers") or []:
        bid = owner.get(a["item_id"]) or next((b for b in bank_ids if b in banks and a["item_id"] in banks[b].ids),
                                              bank_ids[0] if bank_ids else "")
        items.append(_answer_item(_bank(banks, bid), a["item_id"], bool(a.get("declined")), a.get("value")))
    if view.get("status") == "finished":
        items.extend(score_answers(_bank(banks, b, by_bank.get(b)), by_bank.get(b) or {}) for b in bank_ids)
    if view.get("battery"):
        derived = [f"{base}/Questionnaire/battery.{view['battery']}"]
    else:
        derived = [f"{base}/Questionnaire/bank.{b}" for b in bank_ids]
    qr = {"resourceType": "QuestionnaireResponse", "id": view["id"],
          "questionnaire": derived[0],
          "status": _QR_STATUS.get(view.get("status"), "stopped"), "subject": subject(view["patient"]),
          "authored": view.get("finished_at") or view.get("updated_at") or view.get("created_at")}
    if len(derived) > 1:  # a sitting over several banks that is not a battery: one Questionnaire each
        qr["extension"] = [{"url": "urn:cat-prom:fhir:extension:questionnaires", "valueCanonical": d} for d in derived]
    if items:
        qr["item"] = items
    return qr


def observations(sitting: dict, banks: dict) -> list[dict]:
    """One Observation per domain of a finished sitting (``sitting``: an entry of ``patient_results``
    or a finished session view, plus ``patient``)."""
    sid = sitting.get("session_id") or sitting["id"]
    out = []
    for k, r in enumerate(sitting.get("results") or []):
        bank = _bank(banks, r.get("bank_id", ""), r)
        obs = {"resourceType": "Observation", "id": f"{sid}.{k}", "status": "final",
               "category": [{"coding": [coding(CS_OBS_CATEGORY, "survey", "Survey")]}],
               "code": {"coding": bank_codings(bank) if not isinstance(bank, _Missing)
                        else [coding(CS_BANK, bank.id, bank.name)], "text": f"{bank.name} (T-score)"},
               "subject": subject(sitting["patient"]),
               "effectiveDateTime": sitting.get("finished_at")}
        scored = is_scored(r)
        if scored:
            obs["valueQuantity"] = {"value": float(r["t_score"]), "unit": "T-score", "system": UCUM, "code": "{score}"}
        else:
            obs["dataAbsentReason"] = data_absent(absent_reason(r))
        est = str(r.get("estimator") or "eap")
        obs["method"] = {"coding": [coding(CS_METHOD, f"cat-{est}", f"Computerised adaptive test, {est.upper()} "
                                                                   f"estimate")],
                         "text": f"IRT computerised adaptive test ({est.upper()} θ estimate, T = 50 + 10·θ on the "
                                 f"bank's metric), bank version {r.get('bank_version', '?')}"}
        obs["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{sid}"}]
        comps = []
        if scored:
            comps.append({"code": {"coding": [score_coding("theta")]}, "valueQuantity": {"value": float(r["theta"])}})
            comps.append({"code": {"coding": [score_coding("se")]}, "valueQuantity": {"value": float(r["se"])}})
            if r.get("band") is not None:
                comps.append({"code": {"coding": [score_coding("band")]}, "valueString": str(r["band"])})
        if r.get("stop_reason"):
            comps.append({"code": {"coding": [score_coding("stop-reason")]}, "valueString": str(r["stop_reason"])})
        if comps:
            obs["component"] = comps
        if obs["effectiveDateTime"] is None:
            del obs["effectiveDateTime"]
        out.append(obs)
    return out


def bundle(entries: list[dict], base: str, total: int | None = None, next_url: str | None = None,
           self_url: str | None = None) -> dict:
    b = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        b["total"] = total
    links = [{"relation": "self", "url": self_url}] if self_url else []
    if next_url:
        links.append({"relation": "next", "url": next_url})
    if links:
        b["link"] = links
    b["entry"] = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in entries]
    return b

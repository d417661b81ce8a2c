"""Questionnaires: the published one per bank or battery, and the adaptive one grown by ``$next-question``.

* ``GET /fhir/Questionnaire/{id}`` returns a Questionnaire conforming to SDC's *Adaptive Questionnaire -
  search* profile (``sdc-questionnaire-adapt-srch``): the ``questionnaireAdaptive`` extension, title,
  date, description (with the recall period and instructions), codes, and **no items** (the profile
  sets ``item 0..0``: an adaptive form's items are not known in advance).
* ``$next-question`` returns a QuestionnaireResponse whose *contained* Questionnaire conforms to
  *Adaptive Questionnaire* (``sdc-questionnaire-adapt``: ``derivedFrom`` the published one, no url or
  version) and holds, in order, the items offered so far: for each bank a display item with its
  instructions and recall period before its first question, then each question as a ``choice`` item
  whose ``answerOption`` codings carry the response values (``itemWeight``) and a last option
  "asked-declined" (``data-absent-reason``) for a patient who declines; at the end one read-only
  group of scores per domain.
"""
from __future__ import annotations

import datetime as dt
import re

from cat_prom.evidence import is_scored

from .codes import (DECLINED, EXT_ADAPTIVE, EXT_DATA_ABSENT, EXT_VERSION_ALGORITHM, PROFILE_Q_ADAPT,
                    PROFILE_Q_ADAPT_SEARCH, SCORES, SEMVER, CS_BATTERY, CS_VERSION_ALGORITHM, answer_codings,
                    bank_codings, coding, item_codings, score_coding)

CONTAINED_ID = "adaptive"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SCORE_TYPES = {"theta": "decimal", "se": "decimal", "t-score": "decimal", "band": "string", "stop-reason": "string"}


def canonical_url(base: str, target) -> str:
    return f"{base}/Questionnaire/{target.id}"


def computable_name(target) -> str:
    """``name`` for the cnl-0 invariant (``^[A-Z]([A-Za-z0-9_]){1,254}$``)."""
    words = re.split(r"[^A-Za-z0-9]+", f"cat prom {target.kind} {target.key}")
    return "".join(w[:1].upper() + w[1:] for w in words if w)[:255]


def _date(target, loaded: str) -> str:
    dates = [str(b.provenance.get("date")) for b in target.banks if _DATE.match(str(b.provenance.get("date", "")))]
    return max(dates) if dates else loaded


def _description(target) -> str:
    parts = [target.description.strip()] if target.description.strip() else []
    for b in target.banks:
        line = f"**{b.name}**"
        if b.recall_period:
            line += f" (recall period: {b.recall_period})"
        if b.instructions:
            line += f": {b.instructions}"
        parts.append(line)
    disclaimers = sorted({b.disclaimer for b in target.banks if b.disclaimer})
    return "\n\n".join(parts + disclaimers)


def _codes(target) -> list[dict]:
    if target.kind == "battery":
        return [coding(CS_BATTERY, target.key, target.name)]
    return bank_codings(target.banks[0])


def published(target, base: str, loaded: str | None = None) -> dict:
    """The Questionnaire of a bank or battery (sdc-questionnaire-adapt-srch)."""
    loaded = loaded or dt.date.today().isoformat()
    q = {"resourceType": "Questionnaire", "id": target.id, "meta": {"profile": [PROFILE_Q_ADAPT_SEARCH]},
         "extension": [{"url": EXT_ADAPTIVE, "valueBoolean": True}], "url": canonical_url(base, target)}
    if target.kind == "bank" and SEMVER.match(target.banks[0].version):
        q["extension"].append({"url": EXT_VERSION_ALGORITHM, "valueCoding": coding(CS_VERSION_ALGORITHM, "semver")})
        q["version"] = target.banks[0].version
    q.update({
        "name": computable_name(target), "title": target.name, "status": "active",
        "experimental": any(b.demo for b in target.banks), "subjectType": ["Patient"],
        "date": _date(target, loaded), "publisher": "cat-prom", "description": _description(target),
        "code": _codes(target),
    })
    return q


def question_item(bank, item) -> dict:
    return {"linkId": f"{bank.id}/{item.id}", "code": item_codings(bank, item), "text": item.stem,
            "type": "choice", "required": True,
            "answerOption": [{"valueCoding": c} for c in answer_codings(bank, item)] + [{"valueCoding": dict(DECLINED)}]}


def instructions_item(bank) -> dict | None:
    text = bank.instructions or (f"Please think about the {bank.recall_period}." if bank.recall_period else "")
    if not text:
        return None
    return {"linkId": f"{bank.id}/instructions", "text": text, "type": "display"}


def score_group_item(bank) -> dict:
    return {"linkId": f"score/{bank.id}", "text": f"{bank.name}: scores", "type": "group", "readOnly": True,
            "item": [{"linkId": f"score/{bank.id}/{code}", "code": [score_coding(code)], "text": SCORES[code],
                      "type": _SCORE_TYPES[code], "readOnly": True} for code in SCORES]}


def contained(target, base: str, offered: list, finished: bool, state_ext: dict) -> dict:
    """The contained adaptive Questionnaire: the items offered so far (``offered``: (bank, item) pairs),
    and the score groups once ``finished``."""
    items = []
    started = set()
    for bank, item in offered:
        if bank.id not in started:
            started.add(bank.id)
            ins = instructions_item(bank)
            if ins:
                items.append(ins)
        items.append(question_item(bank, item))
    if finished:
        items.extend(score_group_item(b) for b in target.banks)
    q = {"resourceType": "Questionnaire", "id": CONTAINED_ID, "meta": {"profile": [PROFILE_Q_ADAPT]},
         "extension": [{"url": EXT_ADAPTIVE, "valueBoolean": True}, state_ext],
         "name": computable_name(target), "title": target.name, "derivedFrom": [canonical_url(base, target)],
         "status": "active", "experimental": any(b.demo for b in target.banks), "subjectType": ["Patient"],
         "code": _codes(target)}
    if items:
        q["item"] = items
    return q


#: the engine's status_reason of a not-scored domain -> data-absent-reason code
_ABSENT = {"all_declined": "asked-declined", "no_eligible_items": "not-asked", "no_answers": "not-performed"}


def absent_reason(result: dict) -> str:
    """``asked-declined`` (every question declined), ``not-asked`` (no question could be asked) or
    ``not-performed`` (nothing answered yet)."""
    why = result.get("status_reason")
    if why in _ABSENT:
        return _ABSENT[why]
    return "asked-declined" if int(result.get("n_declined") or 0) > 0 else "not-asked"


def score_answers(bank, result: dict) -> dict:
    """The QuestionnaireResponse group of one domain's scores (read-only items)."""
    scored = is_scored(result)
    values = {"theta": result.get("theta"), "se": result.get("se"), "t-score": result.get("t_score"),
              "band": result.get("band"), "stop-reason": result.get("stop_reason")}
    out = []
    for code in SCORES:
        it = {"linkId": f"score/{bank.id}/{code}", "text": SCORES[code]}
        v = values[code]
        if code != "stop-reason" and (not scored or v is None):
            it["extension"] = [{"url": EXT_DATA_ABSENT, "valueCode": absent_reason(result) if not scored
                                else "not-applicable"}]
        elif v is not None:
            key = "valueDecimal" if _SCORE_TYPES[code] == "decimal" else "valueString"
            it["answer"] = [{key: float(v) if key == "valueDecimal" else str(v)}]
        out.append(it)
    return {"linkId": f"score/{bank.id}", "text": f"{bank.name}: scores", "item": out}

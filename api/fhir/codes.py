"""Code systems, extension URLs and codings of cat-prom's FHIR interface (one place for each URI).

cat-prom's own concepts are named by URNs in the ``urn:cat-prom:`` namespace the service already
uses for its problem types (``urn:cat-prom:problem:<code>``); they need no web host and never change
with the server's address:

=====================================================  =======================================
``urn:cat-prom:fhir:bank``                              code = bank id (Questionnaire.code, Observation.code)
``urn:cat-prom:fhir:battery``                           code = battery id
``urn:cat-prom:fhir:bank:<bank id>:item``               code = item id (Questionnaire.item.code)
``urn:cat-prom:fhir:bank:<bank id>:item:<item id>``     code = the response value as text (answerOption.valueCoding)
``urn:cat-prom:fhir:score``                             theta, se, t-score, band, stop-reason (score items, Observation components)
=====================================================  =======================================

Ids inside a URN are percent-encoded (RFC 3986 unreserved characters stay as they are). A bank
file may carry standard codes (LOINC, ...) for the bank and its items (``codes`` in the bank format);
they are listed beside the cat-prom coding.
"""
from __future__ import annotations

import re
from urllib.parse import quote

FHIR_MEDIA_TYPE = "application/fhir+json"
FHIR_VERSION = "4.0.1"
SDC = "http://hl7.org/fhir/uv/sdc"
SDC_VERSION = "4.0.0"
PROFILE_Q_ADAPT = f"{SDC}/StructureDefinition/sdc-questionnaire-adapt"
PROFILE_Q_ADAPT_SEARCH = f"{SDC}/StructureDefinition/sdc-questionnaire-adapt-srch"
PROFILE_QR_ADAPT = f"{SDC}/StructureDefinition/sdc-questionnaireresponse-adapt"
OPDEF_NEXT_QUESTION = f"{SDC}/OperationDefinition/Questionnaire-next-question"

EXT_ADAPTIVE = f"{SDC}/StructureDefinition/sdc-questionnaire-questionnaireAdaptive"
EXT_ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
EXT_DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
EXT_VERSION_ALGORITHM = "http://hl7.org/fhir/StructureDefinition/artifact-versionAlgorithm"
EXT_DERIVATION_TYPE = "http://hl7.org/fhir/StructureDefinition/questionnaire-derivationType"
EXT_HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"
#: cat-prom's signed CAT state on the contained Questionnaire (see :mod:`api.fhir.signing`).
EXT_CAT_STATE = "urn:cat-prom:fhir:extension:cat-state"

CS_DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CS_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CS_VERSION_ALGORITHM = "http://hl7.org/fhir/version-algorithm"
CS_DERIVATION_TYPE = "http://hl7.org/fhir/questionnaire-derivationType"
CS_BANK = "urn:cat-prom:fhir:bank"
CS_BATTERY = "urn:cat-prom:fhir:battery"
CS_SCORE = "urn:cat-prom:fhir:score"
UCUM = "http://unitsofmeasure.org"

#: FHIR ``id``: 1-64 of A-Z a-z 0-9 - . (R4 2.24.0.3)
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: ``semver`` for artifact-versionAlgorithm (SDC invariants sdc-2/sdc-3 ask for it whenever version is set)
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

DECLINED = {"system": CS_DATA_ABSENT, "code": "asked-declined", "display": "Asked But Declined"}

#: score item / Observation component codes -> display
SCORES = {
    "theta": "Latent trait estimate (theta, IRT metric)",
    "se": "Standard error of theta",
    "t-score": "T-score",
    "band": "Severity band",
    "stop-reason": "Why the adaptive test stopped",
}


def _enc(s: str) -> str:
    return quote(str(s), safe="-._~")


def item_system(bank_id: str) -> str:
    return f"{CS_BANK}:{_enc(bank_id)}:item"


def answer_system(bank_id: str, item_id: str) -> str:
    return f"{CS_BANK}:{_enc(bank_id)}:item:{_enc(item_id)}"


def coding(system: str, code: str, display: str = "") -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def standard(codes) -> list[dict]:
    """A bank's or item's own ``codes`` ((system, code, display) tuples) as codings."""
    return [coding(s, c, d) for s, c, d in codes]


def bank_codings(bank) -> list[dict]:
    return [coding(CS_BANK, bank.id, bank.name)] + standard(getattr(bank, "codes", ()))


def item_codings(bank, item) -> list[dict]:
    return [coding(item_system(bank.id), item.id)] + standard(getattr(item, "codes", ()))


def answer_code(value) -> str:
    """cat-prom's code of a response value: its text (values are distinct per item; an item whose
    values share a text, ``1`` and ``"1"``, is kept out of FHIR: :mod:`api.fhir.catalog`)."""
    return str(value)


def answer_codings(bank, item) -> list[dict]:
    """One coding per response option: the option's standard code from the bank file when it has
    one (a LOINC answer code, say), else cat-prom's (code = the value as text); display = the label;
    for a numeric value the itemWeight extension carrying it (SDC 4.0 renamed ordinalValue to
    itemWeight)."""
    system = answer_system(bank.id, item.id)
    std = getattr(item, "option_codes", ()) or (None,) * len(item.values)
    out = []
    for v, label, sc in zip(item.values, item.labels, std):
        c = coding(system, answer_code(v), label) if sc is None else coding(sc[0], sc[1], label)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            c = {"extension": [{"url": EXT_ITEM_WEIGHT, "valueDecimal": v}], **c}
        out.append(c)
    return out


def option_index(bank, item, c: dict) -> int | None:
    """The option of ``item`` that the coding ``c`` names (by system and code), or None."""
    key = (c.get("system"), c.get("code"))
    for k, oc in enumerate(answer_codings(bank, item)):
        if (oc["system"], oc["code"]) == key:
            return k
    return None


def data_absent(code: str) -> dict:
    return {"coding": [coding(CS_DATA_ABSENT, code)], "text": code.replace("-", " ")}


def score_coding(code: str) -> dict:
    return coding(CS_SCORE, code, SCORES[code])

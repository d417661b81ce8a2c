"""``GET /fhir/metadata``: the CapabilityStatement (FHIR R4 4.0.1, SDC 4.0.0 adaptive forms)."""
from __future__ import annotations

from .codes import (FHIR_VERSION, OPDEF_NEXT_QUESTION, PROFILE_Q_ADAPT_SEARCH, PROFILE_QR_ADAPT, SDC,
                    SDC_VERSION)


def capability_statement(base: str, questionnaire_ids: list[str]) -> dict:
    from .. import API_VERSION

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "cat-prom",
        "kind": "instance",
        "software": {"name": "cat-prom", "version": API_VERSION},
        "implementation": {"description": "cat-prom: computerised adaptive testing of patient-reported outcomes",
                           "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "implementationGuide": [f"{SDC}/ImplementationGuide/hl7.fhir.uv.sdc|{SDC_VERSION}"],
        "rest": [{
            "mode": "server",
            "documentation": f"{len(questionnaire_ids)} adaptive questionnaires. Send an API key as "
                             "`Authorization: Bearer <key>`: a patient-app key (or a patient link token, for its own "
                             "questionnaire and patient) for $next-question, a clinician key for reading "
                             "QuestionnaireResponse and Observation. Errors are OperationOutcome.",
            "security": {"service": [{"text": "Bearer API key or patient link token (cat-prom)"}],
                         "description": "API keys with roles patient-app, clinician, researcher, admin; "
                                        "patient link tokens (cpl_...) scoped to one patient's questionnaire."},
            "resource": [
                {"type": "Questionnaire", "supportedProfile": [PROFILE_Q_ADAPT_SEARCH],
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "_id", "type": "token"}, {"name": "url", "type": "uri"}],
                 "operation": [{"name": "next-question", "definition": OPDEF_NEXT_QUESTION}]},
                {"type": "QuestionnaireResponse", "supportedProfile": [PROFILE_QR_ADAPT],
                 "interaction": [{"code": "read"}, {"code": "create", "documentation": "Stores a sitting "
                                                    "completed through $next-question (patient-app key or link token)."}]},
                {"type": "Observation", "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "subject", "type": "reference"}, {"name": "patient", "type": "reference"},
                                 {"name": "_count", "type": "number"}]},
            ],
        }],
    }

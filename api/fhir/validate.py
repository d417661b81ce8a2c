"""Structural validation of FHIR resources with the ``fhir.resources`` models.

``fhir.resources`` 8 ships FHIR R5 as its default package and R4B (4.3.0) as ``fhir.resources.R4B``;
no maintained Python package models R4 (4.0.1) itself (``fhir.resources`` 6.x did, on pydantic 1,
unmaintained since 2023). cat-prom speaks R4 and validates with the R4B models: for the resources
and elements it reads and writes (Questionnaire, QuestionnaireResponse, Observation, Parameters,
OperationOutcome, CapabilityStatement, Bundle) R4B changed no element, cardinality or type that
cat-prom uses (``docs/fhir.md``, "R4 and R4B", lists the check). The models check structure,
types, cardinalities and unknown elements; they do not check coded values against value sets,
which the tests check where cat-prom relies on them.
"""
from __future__ import annotations

import importlib

from ..problems import Problem

_MODULES = {
    "Questionnaire": "questionnaire", "QuestionnaireResponse": "questionnaireresponse",
    "Observation": "observation", "Parameters": "parameters", "OperationOutcome": "operationoutcome",
    "CapabilityStatement": "capabilitystatement", "Bundle": "bundle",
}
_CLASSES: dict = {}


def model(resource_type: str):
    cls = _CLASSES.get(resource_type)
    if cls is None:
        mod = importlib.import_module(f"fhir.resources.R4B.{_MODULES[resource_type]}")
        cls = _CLASSES[resource_type] = getattr(mod, resource_type)
    return cls


def errors(resource: dict) -> list[str]:
    """What is structurally wrong with ``resource`` (empty when it validates), as ``path: message``."""
    from pydantic import ValidationError

    rt = resource.get("resourceType") if isinstance(resource, dict) else None
    if rt not in _MODULES:
        return [f"resourceType: expected one of {', '.join(_MODULES)}, got {str(rt)[:40]!r}"]
    try:
        model(rt).model_validate(resource)
    except ValidationError as e:
        return [f"{rt}.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors(include_input=False)]
    except (ValueError, TypeError) as e:  # pragma: no cover - the models raise ValidationError
        return [f"{rt}: {type(e).__name__}"]
    return []


def parse(resource_type: str, resource: dict) -> None:
    """Raise a 400 ``fhir-invalid-resource`` Problem (OperationOutcome on /fhir) unless ``resource``
    is a structurally valid ``resource_type``."""
    errs = errors(resource)
    if errs:
        shown = "; ".join(e[:300] for e in errs[:5])
        more = f" (and {len(errs) - 5} more)" if len(errs) > 5 else ""
        raise Problem("fhir-invalid-resource", f"Not a valid FHIR {resource_type}: {shown}{more}.",
                      fhir_expression=[e.split(":", 1)[0] for e in errs[:5]])

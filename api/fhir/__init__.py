"""FHIR R4 interface (SDC 4.0.0 adaptive questionnaires): ``init_app(app)`` mounts it under ``/fhir``.

Modules: :mod:`.codes` (URIs and codings), :mod:`.catalog` (banks and batteries as Questionnaires),
:mod:`.questionnaire` (published and contained Questionnaires, score items), :mod:`.signing`
(the signed CAT state), :mod:`.nextq` (``$next-question``), :mod:`.records` (stored sittings as
QuestionnaireResponse and Observations), :mod:`.capability`, :mod:`.validate` (fhir.resources
models), :mod:`.outcome` (errors as OperationOutcome), :mod:`.routes`. Guide: ``docs/fhir.md``.
"""
from __future__ import annotations

import datetime as dt
import threading

from flask import Flask, request

from .catalog import Catalog
from .signing import Signer

__all__ = ["init_app", "FhirExtension"]


class FhirExtension:
    def __init__(self, app: Flask, catalog: Catalog):
        self.config = app.config
        self.instance_path = app.instance_path
        self.catalog = catalog
        self.loaded = dt.date.today().isoformat()
        self._signer: Signer | None = None
        self._lock = threading.Lock()

    @property
    def signer(self) -> Signer:
        # Made on first use: the instance key file is only created when FHIR is used without a configured key.
        if self._signer is None:
            with self._lock:
                if self._signer is None:
                    self._signer = Signer.from_config(self.config, self.instance_path)
        return self._signer

    def base(self) -> str:
        """The FHIR base URL: ``CAT_PROM_FHIR_BASE_URL``, else this request's host + ``/fhir``."""
        configured = self.config.get("CAT_PROM_FHIR_BASE_URL")
        return configured.rstrip("/") if configured else request.host_url.rstrip("/") + "/fhir"


def init_app(app: Flask) -> None:
    from .outcome import to_operation_outcome
    from .routes import bp

    app.extensions["cat_prom_fhir"] = FhirExtension(app, Catalog.build(app.extensions["cat_prom"].registry))
    app.register_blueprint(bp)
    app.after_request(to_operation_outcome)

"""Storage: the one place with SQL. :class:`SessionStore` owns the engine, the tables and every
query, and returns plain records (:mod:`api.store.records`); :mod:`api.service` builds no SQL."""
from __future__ import annotations

from .audit import AuditQueries, AuditRecord
from .engine import Database, as_utc, utcnow
from .jobs import JobQueries
from .key_queries import KeyQueries
from .pages import PageQueries
from .patient_data import PatientDataQueries
from .records import Advance, KeyRecord, ResponseRecord, SessionRecord
from .session_queries import ABANDONED, EXPIRED, FINISHED, IN_PROGRESS, SessionQueries
from .tables import api_keys, metadata, responses, sessions
from . import clinical_tables, outbox  # noqa: F401  (the clinical layer's tables join `metadata`)

__all__ = ["SessionStore", "AuditRecord", "Advance", "KeyRecord", "ResponseRecord", "SessionRecord", "as_utc", "utcnow",
           "IN_PROGRESS", "FINISHED", "ABANDONED", "EXPIRED", "metadata", "api_keys", "sessions", "responses"]


class SessionStore(SessionQueries, KeyQueries, PageQueries, AuditQueries, PatientDataQueries, JobQueries, Database):
    """The database of the service: engine and transactions (:class:`~api.store.engine.Database`),
    sittings and their response logs (:class:`~api.store.session_queries.SessionQueries`) and API keys
    (:class:`~api.store.key_queries.KeyQueries`), patient links and clinician web sessions
    (:class:`~api.store.pages.PageQueries`) the audit log (:class:`~api.store.audit.AuditQueries`) and one patient's data for export and erasure
    (:class:`~api.store.patient_data.PatientDataQueries`), and simulation jobs (:class:`~api.store.jobs.JobQueries`)."""

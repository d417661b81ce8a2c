"""One patient's data across every table: export (read all of it) and erasure (delete all of it).

:data:`PATIENT_TABLES` is the one list of where a patient's data lives; export and erasure both
walk it, and a test checks that no other table holds a patient reference. Rows reach a patient
either by ``tenant`` + ``patient_ref`` or through a parent row (responses through their sitting,
ratings and levels through their goal, outbox rows and deliveries through their alert).

The audit log is not erased: erasure replaces the patient's reference there by a keyed hash
(:meth:`~api.store.audit.AuditQueries.pseudonymise_audit`), in the same transaction.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .clinical import lock_patient
from .clinical_tables import (acceptable_levels, alerts, baselines, domain_results, goal_levels, goal_ratings,
                              personal_goals)
from .engine import as_utc
from .outbox import deliveries, outbox
from .pages import patient_links
from .tables import responses, sessions

#: table -> how its rows are found: ("ref",) by tenant + patient_ref, or (column, parent table) through a
#: parent's ids. Children come after parents for reading, and are deleted before them.
PATIENT_TABLES = {
    "sessions": ("ref",),
    "responses": ("session_id", "sessions"),
    "domain_results": ("ref",),
    "patient_links": ("ref",),
    "acceptable_levels": ("ref",),
    "baselines": ("ref",),
    "personal_goals": ("ref",),
    "goal_levels": ("goal_id", "personal_goals"),
    "goal_ratings": ("goal_id", "personal_goals"),
    "alerts": ("ref",),
    "outbox": ("alert_id", "alerts"),
    "deliveries": ("outbox_id", "outbox"),
}
_TABLES = {t.name: t for t in (sessions, responses, domain_results, patient_links, acceptable_levels, baselines,
                               personal_goals, goal_levels, goal_ratings, alerts, outbox, deliveries)}
_SECRET_COLUMNS = {"patient_links": ("token_hash",)}  # never exported


def _plain(row, drop=()) -> dict:
    out = {}
    for k, v in row._mapping.items():
        if k in drop:
            continue
        out[k] = as_utc(v).isoformat() if isinstance(v, dt.datetime) else v.isoformat() if isinstance(v, dt.date) else v
    return out


class PatientDataQueries:
    """Export and erasure of one patient. Mixed into :class:`api.store.SessionStore`."""

    def _patient_conditions(self, conn: Connection, tenant: str, patient: str) -> dict[str, sa.ColumnElement]:
        ids: dict[str, list] = {}
        conds = {}
        for name, how in PATIENT_TABLES.items():
            t = _TABLES[name]
            if how == ("ref",):
                cond = sa.and_(t.c.tenant == tenant, t.c.patient_ref == patient)
            else:
                col, parent = how
                cond = t.c[col].in_(ids[parent]) if ids[parent] else sa.false()
            conds[name] = cond
            if "id" in t.c:
                ids[name] = list(conn.execute(sa.select(t.c.id).where(cond)).scalars())
        return conds

    def patient_data(self, tenant: str, patient: str) -> dict[str, list[dict]]:
        """Every row of the patient's data, per table (secrets such as link-token hashes left out)."""
        with self.read() as conn:
            conds = self._patient_conditions(conn, tenant, patient)
            out = {}
            for name, cond in conds.items():
                t = _TABLES[name]
                order = [c for c in t.primary_key.columns]
                out[name] = [_plain(r, _SECRET_COLUMNS.get(name, ())) for r in
                             conn.execute(sa.select(t).where(cond).order_by(*order))]
        return out

    def erase_patient(self, tenant: str, patient: str, pseudonym: str) -> dict[str, int]:
        """Delete every row of the patient's data in one transaction, children first, and pseudonymise
        the patient's audit rows; returns rows deleted per table (and ``audit_log`` rows pseudonymised)."""
        with self.write() as conn:
            lock_patient(conn, self.is_postgres, tenant, patient)  # no sitting of theirs is evaluated meanwhile
            conds = self._patient_conditions(conn, tenant, patient)
            counts = {}
            for name in reversed(list(PATIENT_TABLES)):
                counts[name] = conn.execute(_TABLES[name].delete().where(conds[name])).rowcount
            counts["audit_log"] = self.pseudonymise_audit(conn, tenant, patient, pseudonym)
        return counts

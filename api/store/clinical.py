"""Statements of the clinical layer (tables in :mod:`api.store.clinical_tables`). Every function
takes the connection of the caller's transaction, so the finishing answer can write domain
results, alerts and outbox rows in one transaction, and returns plain records."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import uuid
import zlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .engine import as_utc
from .clinical_tables import (acceptable_levels, alert_rule_settings, alerts, baselines, domain_results, goal_levels,
                              goal_ratings, personal_goals, tenant_bank_settings)

OPEN, ACKNOWLEDGED = "open", "acknowledged"
SITTING = "*"  # bank id of sitting-level alerts (abandoned sittings)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _rec(cls, row):
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    d = row._mapping
    return cls(**{k: as_utc(v) if isinstance(v, dt.datetime) else v for k in names if k in d for v in (d[k],)})


@dataclasses.dataclass(frozen=True)
class DomainResult:
    session_id: str
    bank_id: str
    tenant: str
    patient_ref: str
    domain: str
    direction: str
    status: str
    status_reason: str | None
    theta: float | None
    se: float | None
    t_score: float | None
    t_se: float | None
    band: str | None
    finished_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class AcceptableLevel:
    id: int
    tenant: str
    patient_ref: str
    bank_id: str
    t_bound: float
    band: str | None
    agreed_by: str
    note: str
    set_by: str
    set_role: str
    set_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class BankSettings:
    tenant: str
    bank_id: str
    default_acceptable_t: float | None
    mid_t: float | None
    updated_by: str
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    tenant: str
    enabled_rules: list
    certainty: float
    abandoned_n: int
    gas_rho: float
    updated_by: str | None
    updated_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class Baseline:
    id: int
    tenant: str
    patient_ref: str
    bank_id: str
    session_id: str
    set_by: str
    set_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Goal:
    id: str
    tenant: str
    patient_ref: str
    title: str
    weight: float
    created_by: str
    created_at: dt.datetime
    archived_at: dt.datetime | None
    levels: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Rating:
    id: int
    goal_id: str
    level: int
    rated_by: str
    key_id: str
    rated_on: dt.date
    note: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Alert:
    id: str
    tenant: str
    patient_ref: str
    bank_id: str
    rule: str
    status: str
    certainty: float | None
    threshold_t: float | None
    t_score: float | None
    t_se: float | None
    details: str
    session_id: str | None
    last_session_id: str | None
    reopens: str | None
    opened_at: dt.datetime
    updated_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    ack_record: str | None
    note: str | None


@contextlib.contextmanager
def savepoint(conn: Connection):
    """A nested transaction (SAVEPOINT): what fails inside is undone without undoing the caller's
    transaction."""
    with conn.begin_nested():
        yield


_LOCK_PATIENT = sa.text("SELECT pg_advisory_xact_lock(:a, :b)")


def lock_patient(conn: Connection, is_postgres: bool, tenant: str, patient: str) -> None:
    """Serialise the evaluations of one patient within the caller's transaction (two sittings
    finishing at once must not both open the same alert). SQLite already runs one writer at a
    time; PostgreSQL takes a transaction-scoped advisory lock on a hash of (tenant, patient)."""
    if is_postgres:
        key = zlib.crc32(f"{tenant}\x00{patient}".encode()) - 2**31
        conn.execute(_LOCK_PATIENT, {"a": 0x636C696E, "b": key})


# --------------------------------------------------------------------------- domain results
def insert_domain_results(conn: Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(domain_results.insert(), rows)


def patient_domain_results(conn: Connection, tenant: str, patient: str, *, bank_id: str | None = None,
                           since: dt.datetime | None = None, until: dt.datetime | None = None,
                           scored_only: bool = False) -> list[DomainResult]:
    """A patient's domain results, oldest first."""
    c = domain_results.c
    q = sa.select(domain_results).where(c.tenant == tenant, c.patient_ref == patient)
    if bank_id is not None:
        q = q.where(c.bank_id == bank_id)
    if since is not None:
        q = q.where(c.finished_at >= since)
    if until is not None:
        q = q.where(c.finished_at <= until)
    if scored_only:
        q = q.where(c.status == "scored")
    return [_rec(DomainResult, r) for r in conn.execute(q.order_by(c.finished_at, c.session_id)).all()]


def _ranked(table: sa.Table, where, partition_by, **orders):
    """``table``'s rows matching ``where``, each with a row number per name in ``orders`` (1 = first in
    that order within its ``partition_by`` group): the subquery and the table's columns on it.
    The statements below use it once, at import, with bind parameters (``_bp``) for the values, so
    a finishing sitting neither rebuilds nor re-keys them."""
    sub = sa.select(table, *[sa.func.row_number().over(partition_by=partition_by, order_by=order).label(name)
                             for name, order in orders.items()]).where(*where).subquery()
    return sub, [sub.c[col.name] for col in table.columns]


_bp = sa.bindparam


def _previous_and_first_stmt(exclude: bool, also: bool) -> sa.Select:
    c = domain_results.c
    where = [c.tenant == _bp("tenant"), c.patient_ref == _bp("patient"), c.status == "scored",
             c.bank_id.in_(_bp("banks", expanding=True))]
    if exclude:
        where.append(c.session_id != _bp("exclude"))
    ranked, cols = _ranked(domain_results, where, c.bank_id, rn_last=(c.finished_at.desc(), c.session_id.desc()),
                           rn_first=(c.finished_at, c.session_id))
    keep = sa.or_(ranked.c.rn_last == 1, ranked.c.rn_first == 1)
    if also:
        keep = sa.or_(keep, ranked.c.session_id.in_(_bp("also", expanding=True)))
    return sa.select(*cols, ranked.c.rn_last, ranked.c.rn_first).where(keep)


_PREVIOUS_AND_FIRST = {(e, a): _previous_and_first_stmt(e, a) for e in (False, True) for a in (False, True)}


def last_scored_results(conn: Connection, tenant: str, patient: str, bank_ids) -> dict[str, DomainResult]:
    """The patient's newest scored result of each of ``bank_ids`` (bank id -> result; banks never scored left out)."""
    return {b: found["previous"] for b, found in previous_and_first(conn, tenant, patient, bank_ids).items()
            if "previous" in found}


def previous_and_first(conn: Connection, tenant: str, patient: str, bank_ids, *, exclude_session: str | None = None,
                       also_sessions=()) -> dict[str, dict[str, DomainResult]]:
    """For each of ``bank_ids``, the patient's newest (``"previous"``) and oldest (``"first"``) scored
    result outside sitting ``exclude_session``, and the results of ``also_sessions`` (by session id:
    the marked baselines), in ONE query however long the patient's history: what a finishing
    sitting's rules compare with. bank id -> {"previous"|"first"|<session id>: result}."""
    banks = list(dict.fromkeys(bank_ids))
    also = list(dict.fromkeys(also_sessions))
    stmt = _PREVIOUS_AND_FIRST[exclude_session is not None, bool(also)]
    params = {"tenant": tenant, "patient": patient, "banks": banks, "exclude": exclude_session, "also": also}
    out: dict[str, dict[str, DomainResult]] = {b: {} for b in banks}
    for r in conn.execute(stmt, params).all():
        rec = _rec(DomainResult, r)
        slot = out[rec.bank_id]
        if r.rn_last == 1:
            slot["previous"] = rec
        if r.rn_first == 1:
            slot["first"] = rec
        if rec.session_id in also:
            slot[rec.session_id] = rec
    return out


def session_domain_results(conn: Connection, tenant: str, session_id: str) -> list[DomainResult]:
    c = domain_results.c
    return [_rec(DomainResult, r) for r in conn.execute(
        sa.select(domain_results).where(c.tenant == tenant, c.session_id == session_id)).all()]


def tenant_patients(conn: Connection, tenant: str) -> list[tuple[str, dt.datetime]]:
    """Every patient of ``tenant`` with a finished sitting, and when they last finished one."""
    c = domain_results.c
    rows = conn.execute(sa.select(c.patient_ref, sa.func.max(c.finished_at)).where(c.tenant == tenant)
                        .group_by(c.patient_ref)).all()
    return [(r[0], as_utc(r[1])) for r in rows]


def tenant_scored_results(conn: Connection, tenant: str) -> list[DomainResult]:
    """Every scored domain result of a tenant, oldest first (the triage list's input)."""
    c = domain_results.c
    return [_rec(DomainResult, r) for r in conn.execute(
        sa.select(domain_results).where(c.tenant == tenant, c.status == "scored")
        .order_by(c.patient_ref, c.bank_id, c.finished_at, c.session_id)).all()]


def count_finished_sittings(conn: Connection, tenant: str, since: dt.datetime, until: dt.datetime) -> int:
    c = domain_results.c
    return conn.execute(sa.select(sa.func.count(sa.distinct(c.session_id)))
                        .where(c.tenant == tenant, c.finished_at >= since, c.finished_at < until)).scalar_one()


# -------------------------------------------------------------------------- acceptable levels
def add_acceptable_level(conn: Connection, **values) -> AcceptableLevel:
    rid = conn.execute(acceptable_levels.insert().values(**values)).inserted_primary_key[0]
    return _rec(AcceptableLevel, conn.execute(sa.select(acceptable_levels)
                                              .where(acceptable_levels.c.id == rid)).one())


def acceptable_history(conn: Connection, tenant: str, patient: str) -> list[AcceptableLevel]:
    """Every level ever set for the patient, newest first."""
    c = acceptable_levels.c
    return [_rec(AcceptableLevel, r) for r in conn.execute(
        sa.select(acceptable_levels).where(c.tenant == tenant, c.patient_ref == patient)
        .order_by(c.id.desc())).all()]


def current_acceptable(conn: Connection, tenant: str, patient: str, bank_id: str) -> AcceptableLevel | None:
    return current_acceptables(conn, tenant, patient, [bank_id]).get(bank_id)


def _current_acceptables_stmt() -> sa.Select:
    c = acceptable_levels.c
    ranked, cols = _ranked(acceptable_levels, [c.tenant == _bp("tenant"), c.patient_ref == _bp("patient"),
                                               c.bank_id.in_(_bp("banks", expanding=True))],
                           c.bank_id, rn=c.id.desc())
    return sa.select(*cols).where(ranked.c.rn == 1)


_CURRENT_ACCEPTABLES = _current_acceptables_stmt()


def current_acceptables(conn: Connection, tenant: str, patient: str, bank_ids) -> dict[str, AcceptableLevel]:
    """bank id -> the patient's newest acceptable level of each of ``bank_ids`` that has one (one query)."""
    params = {"tenant": tenant, "patient": patient, "banks": list(dict.fromkeys(bank_ids))}
    return {r.bank_id: _rec(AcceptableLevel, r) for r in conn.execute(_CURRENT_ACCEPTABLES, params).all()}


# ----------------------------------------------------------------------------------- settings
_BANK_SETTINGS = sa.select(tenant_bank_settings).where(tenant_bank_settings.c.tenant == _bp("tenant"))
_ALERT_SETTINGS = sa.select(alert_rule_settings).where(alert_rule_settings.c.tenant == _bp("tenant"))


def bank_settings(conn: Connection, tenant: str) -> dict[str, BankSettings]:
    return {r.bank_id: _rec(BankSettings, r) for r in conn.execute(_BANK_SETTINGS, {"tenant": tenant}).all()}


def put_bank_settings(conn: Connection, tenant: str, bank_id: str, *, default_acceptable_t: float | None,
                      mid_t: float | None, updated_by: str, now: dt.datetime) -> BankSettings:
    c = tenant_bank_settings.c
    values = {"default_acceptable_t": default_acceptable_t, "mid_t": mid_t, "updated_by": updated_by,
              "updated_at": now}
    if conn.execute(tenant_bank_settings.update().where(c.tenant == tenant, c.bank_id == bank_id)
                    .values(**values)).rowcount == 0:
        conn.execute(tenant_bank_settings.insert().values(tenant=tenant, bank_id=bank_id, **values))
    return bank_settings(conn, tenant)[bank_id]


def alert_settings(conn: Connection, tenant: str, defaults: dict) -> AlertSettings:
    r = conn.execute(_ALERT_SETTINGS, {"tenant": tenant}).first()
    if r is None:
        return AlertSettings(tenant=tenant, updated_by=None, updated_at=None, **defaults)
    return AlertSettings(tenant, json.loads(r.enabled_rules), r.certainty, r.abandoned_n, r.gas_rho, r.updated_by,
                         as_utc(r.updated_at))


def put_alert_settings(conn: Connection, tenant: str, *, enabled_rules: list, certainty: float, abandoned_n: int,
                       gas_rho: float, updated_by: str, now: dt.datetime) -> None:
    values = {"enabled_rules": json.dumps(list(enabled_rules)), "certainty": certainty, "abandoned_n": abandoned_n,
              "gas_rho": gas_rho, "updated_by": updated_by, "updated_at": now}
    c = alert_rule_settings.c
    if conn.execute(alert_rule_settings.update().where(c.tenant == tenant).values(**values)).rowcount == 0:
        conn.execute(alert_rule_settings.insert().values(tenant=tenant, **values))


# ---------------------------------------------------------------------------------- baselines
def add_baseline(conn: Connection, **values) -> Baseline:
    rid = conn.execute(baselines.insert().values(**values)).inserted_primary_key[0]
    return _rec(Baseline, conn.execute(sa.select(baselines).where(baselines.c.id == rid)).one())


_BASELINES = (sa.select(baselines).where(baselines.c.tenant == _bp("tenant"), baselines.c.patient_ref == _bp("patient"))
              .order_by(baselines.c.id))


def current_baselines(conn: Connection, tenant: str, patient: str) -> dict[str, Baseline]:
    """bank id -> the newest baseline marked for the patient."""
    out: dict[str, Baseline] = {}
    for r in conn.execute(_BASELINES, {"tenant": tenant, "patient": patient}).all():
        out[r.bank_id] = _rec(Baseline, r)
    return out


# ---------------------------------------------------------------------------- personal goals
def create_goal(conn: Connection, *, tenant: str, patient: str, title: str, weight: float, levels: dict[int, str],
                created_by: str, now: dt.datetime) -> Goal:
    gid = "goal_" + uuid.uuid4().hex[:16]
    conn.execute(personal_goals.insert().values(id=gid, tenant=tenant, patient_ref=patient, title=title, weight=weight,
                                                created_by=created_by, created_at=now))
    conn.execute(goal_levels.insert(), [{"goal_id": gid, "level": k, "text": v} for k, v in sorted(levels.items())])
    return get_goal(conn, tenant, gid)


def get_goal(conn: Connection, tenant: str, gid: str) -> Goal | None:
    r = conn.execute(sa.select(personal_goals).where(personal_goals.c.id == gid,
                                                     personal_goals.c.tenant == tenant)).first()
    if r is None:
        return None
    return _with_levels(conn, [_rec(Goal, r)])[0]


def patient_goals(conn: Connection, tenant: str, patient: str, *, include_archived: bool = False) -> list[Goal]:
    c = personal_goals.c
    q = sa.select(personal_goals).where(c.tenant == tenant, c.patient_ref == patient)
    if not include_archived:
        q = q.where(c.archived_at.is_(None))
    return _with_levels(conn, [_rec(Goal, r) for r in conn.execute(q.order_by(c.created_at, c.id)).all()])


def _with_levels(conn: Connection, goals: list[Goal]) -> list[Goal]:
    if not goals:
        return goals
    levels: dict[str, dict[int, str]] = {g.id: {} for g in goals}
    for r in conn.execute(sa.select(goal_levels).where(goal_levels.c.goal_id.in_(list(levels)))).all():
        levels[r.goal_id][r.level] = r.text
    return [dataclasses.replace(g, levels=dict(sorted(levels[g.id].items()))) for g in goals]


def update_goal(conn: Connection, tenant: str, gid: str, *, title: str | None = None, weight: float | None = None,
                levels: dict[int, str] | None = None, archived_at: dt.datetime | None = None) -> None:
    values = {k: v for k, v in (("title", title), ("weight", weight), ("archived_at", archived_at)) if v is not None}
    if values:
        conn.execute(personal_goals.update().where(personal_goals.c.id == gid, personal_goals.c.tenant == tenant)
                     .values(**values))
    for level, text in (levels or {}).items():
        conn.execute(goal_levels.update().where(goal_levels.c.goal_id == gid, goal_levels.c.level == level)
                     .values(text=text))


def add_rating(conn: Connection, **values) -> Rating:
    rid = conn.execute(goal_ratings.insert().values(**values)).inserted_primary_key[0]
    return _rec(Rating, conn.execute(sa.select(goal_ratings).where(goal_ratings.c.id == rid)).one())


def ratings(conn: Connection, goal_ids: list[str]) -> list[Rating]:
    """Ratings of the goals, by date then entry order."""
    if not goal_ids:
        return []
    c = goal_ratings.c
    return [_rec(Rating, r) for r in conn.execute(sa.select(goal_ratings).where(c.goal_id.in_(goal_ids))
                                                  .order_by(c.rated_on, c.id)).all()]


# ------------------------------------------------------------------------------------- alerts
def latest_alert(conn: Connection, tenant: str, patient: str, bank_id: str, rule: str) -> Alert | None:
    """The newest alert for (patient, domain, rule): the open one if any, else the last acknowledged."""
    return latest_alerts(conn, tenant, patient, [bank_id]).get((bank_id, rule))


def _latest_alerts_stmt() -> sa.Select:
    c = alerts.c
    ranked, cols = _ranked(alerts, [c.tenant == _bp("tenant"), c.patient_ref == _bp("patient"),
                                    c.bank_id.in_(_bp("banks", expanding=True))],
                           (c.bank_id, c.rule), rn=(c.opened_at.desc(), c.id.desc()))
    return sa.select(*cols).where(ranked.c.rn == 1)


_LATEST_ALERTS = _latest_alerts_stmt()


def latest_alerts(conn: Connection, tenant: str, patient: str, bank_ids) -> dict[tuple[str, str], Alert]:
    """(bank id, rule) -> the patient's newest alert for it, for each of ``bank_ids`` (one query)."""
    params = {"tenant": tenant, "patient": patient, "banks": list(dict.fromkeys(bank_ids))}
    return {(r.bank_id, r.rule): _rec(Alert, r) for r in conn.execute(_LATEST_ALERTS, params).all()}


def insert_alert(conn: Connection, **values) -> Alert:
    aid = "al_" + uuid.uuid4().hex[:20]
    conn.execute(alerts.insert().values(id=aid, status=OPEN, **values))
    return get_alert(conn, values["tenant"], aid)


def update_alert(conn: Connection, alert_id: str, **values) -> None:
    conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))


def get_alert(conn: Connection, tenant: str, alert_id: str) -> Alert | None:
    r = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id, alerts.c.tenant == tenant)).first()
    return _rec(Alert, r) if r is not None else None


def acknowledge_alert(conn: Connection, tenant: str, alert_id: str, *, by: str, note: str,
                      now: dt.datetime) -> bool:
    """Acknowledge an open alert (False if it is not open); its rule record at this moment is kept as
    the reference a re-opening must exceed by the MID."""
    c = alerts.c
    return conn.execute(alerts.update().where(c.id == alert_id, c.tenant == tenant, c.status == OPEN).values(
        status=ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by, note=note, updated_at=now,
        ack_record=c.details)).rowcount == 1


def list_alerts(conn: Connection, tenant: str, *, status: str | None = None, patient: str | None = None,
                bank_id: str | None = None, rule: str | None = None, since: dt.datetime | None = None,
                limit: int = 100, offset: int = 0) -> list[Alert]:
    c = alerts.c
    q = sa.select(alerts).where(c.tenant == tenant)
    for col, v in ((c.status, status), (c.patient_ref, patient), (c.bank_id, bank_id), (c.rule, rule)):
        if v is not None:
            q = q.where(col == v)
    if since is not None:
        q = q.where(c.updated_at >= since)
    q = q.order_by(c.opened_at.desc(), c.bank_id, c.rule, c.id).limit(limit).offset(offset)
    return [_rec(Alert, r) for r in conn.execute(q).all()]


def open_alerts_by_patient(conn: Connection, tenant: str) -> list[Alert]:
    c = alerts.c
    return [_rec(Alert, r) for r in conn.execute(sa.select(alerts).where(c.tenant == tenant, c.status == OPEN)).all()]


def alert_counts(conn: Connection, tenant: str, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
    """rule -> alerts opened in [since, until) (a re-opening is a new alert)."""
    c = alerts.c
    rows = conn.execute(sa.select(c.rule, sa.func.count()).where(c.tenant == tenant, c.opened_at >= since,
                                                                 c.opened_at < until).group_by(c.rule)).all()
    return {r[0]: r[1] for r in rows}


def last_answered(conn: Connection, tenant: str) -> dict[str, dt.datetime]:
    """patient -> when they last answered anything (any sitting, finished or not)."""
    from .tables import sessions
    c = sessions.c
    rows = conn.execute(sa.select(c.patient_ref, sa.func.max(c.updated_at)).where(c.tenant == tenant,
                                                                                  c.n_responses > 0)
                        .group_by(c.patient_ref)).all()
    return {r[0]: as_utc(r[1]) for r in rows}

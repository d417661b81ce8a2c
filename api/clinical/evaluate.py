"""What happens when a sitting finishes (or is abandoned), inside the answer's own transaction:
domain results are stored (not-scored domains with their reason, never a number), each scored
domain is compared with the previous scored sitting and the baseline, the tenant's rules are run
by the engine (:mod:`cat_prom.clinical`), alerts are opened, updated or re-opened by the engine's
dedupe decision, and every new alert is queued in the outbox for the webhook worker.

Nothing here talks to the outside world, so the transaction stays short, and if it rolls back
(a crash, a lost race) the answer, its alerts and their outbox rows all disappear together: the
retried answer evaluates again and produces them once.
"""
from __future__ import annotations

import datetime as dt
import json
import zlib

import sqlalchemy as sa

from cat_prom.jsonable import dumps

from ..store import clinical as store
from ..store import outbox
from .common import ALERT_DEFAULTS, DEFAULT_MID_T, iso


def lock_patient(conn, db, tenant: str, patient: str) -> None:
    """Serialise evaluations of one patient (two sittings finishing at once must not both open the
    same alert). SQLite already runs one writer at a time; PostgreSQL takes a transaction-scoped
    advisory lock on a hash of (tenant, patient)."""
    if db.is_postgres:
        key = zlib.crc32(f"{tenant}\x00{patient}".encode()) - 2**31
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": 0x636C696E, "b": key})


def domain_result_rows(tenant: str, patient: str, session_id: str, battery, now: dt.datetime) -> list[dict]:
    rows = []
    for s in battery.sessions:
        r = s.result()
        scored = r.get("status") == "scored"
        rows.append({"session_id": session_id, "bank_id": s.bank.id, "tenant": tenant, "patient_ref": patient,
                     "domain": s.bank.domain, "direction": s.bank.direction, "status": r.get("status"),
                     "status_reason": r.get("status_reason"), "theta": r["theta"] if scored else None,
                     "se": r["se"] if scored else None, "t_score": r["t_score"] if scored else None,
                     "t_se": r["t_se"] if scored else None, "band": r.get("band") if scored else None,
                     "finished_at": now})
    return rows


class EvaluateMixin:
    def on_finished(self, conn, *, tenant: str, patient: str, session_id: str, battery, now: dt.datetime) -> list:
        """Store the sitting's domain results and run the alert rules; returns the alerts opened."""
        lock_patient(conn, self.db, tenant, patient)
        settings = store.alert_settings(conn, tenant, ALERT_DEFAULTS)
        bank_settings = store.bank_settings(conn, tenant)
        baselines = store.current_baselines(conn, tenant, patient)
        store.insert_domain_results(conn, domain_result_rows(tenant, patient, session_id, battery, now))
        opened = []
        for s in battery.sessions:
            if not s.scored:
                continue  # a domain without answers never fires a score alert
            bank = s.bank
            bs = bank_settings.get(bank.id)
            mid = bs.mid_t if bs is not None and bs.mid_t is not None else DEFAULT_MID_T
            history = store.patient_domain_results(conn, tenant, patient, bank_id=bank.id, scored_only=True)
            earlier = [h for h in history if h.session_id != session_id]
            previous = earlier[-1] if earlier else None
            baseline = _baseline(earlier, baselines.get(bank.id))
            acceptable_t, _ = self.acceptable_t(conn, tenant, patient, bank.id)
            firings = self._fire(s, previous=previous, baseline=baseline, acceptable_t=acceptable_t, mid=mid,
                                 settings=settings)
            for f in firings:
                a = self._apply(conn, tenant, patient, bank.id, session_id, f, mid=mid, now=now)
                if a is not None:
                    opened.append(a)
        return opened

    def on_abandoned(self, conn, *, tenant: str, patient: str, session_id: str, recent, now: dt.datetime) -> list:
        """The optional ``abandoned_sittings`` rule: the patient's last n sittings were all abandoned.
        ``recent(n)`` gives the statuses of the patient's n newest sittings, newest first."""
        settings = store.alert_settings(conn, tenant, ALERT_DEFAULTS)
        if "abandoned_sittings" not in settings.enabled_rules:
            return []
        from cat_prom.clinical.rules import abandoned_sittings

        lock_patient(conn, self.db, tenant, patient)
        f = abandoned_sittings(recent(settings.abandoned_n), n=settings.abandoned_n)
        if f is None:
            return []
        a = self._apply(conn, tenant, patient, store.SITTING, session_id, f, mid=None, now=now)
        return [a] if a is not None else []

    def _fire(self, session, *, previous, baseline, acceptable_t, mid, settings) -> list:
        """The engine's rule records for one scored domain (only those that fire)."""
        from cat_prom.clinical.rules import evaluate_domain

        return evaluate_domain(
            posterior=session.posterior, nodes=session.grid_theta, bank=session.bank,
            t_score=session.t_score, t_se=session.t_se,
            previous=None if previous is None else (previous.t_score, previous.t_se),
            baseline=None if baseline is None else (baseline.t_score, baseline.t_se),
            acceptable_t=acceptable_t, mid=mid, certainty=settings.certainty, rules=settings.enabled_rules)

    def _apply(self, conn, tenant, patient, bank_id, session_id, firing, *, mid, now):
        """Open, update or re-open the alert for (patient, domain, rule) as the engine decides;
        a new alert is queued for the webhooks. Returns the new alert or None."""
        from cat_prom.clinical.dedupe import decide

        existing = store.latest_alert(conn, tenant, patient, bank_id, firing.rule)
        action = decide(None if existing is None else {"status": existing.status, "t_score": existing.t_score,
                                                       "ack_t_score": existing.ack_t_score},
                        {"t_score": firing.t_score}, mid=mid, direction=firing.direction)
        values = {"certainty": firing.certainty, "threshold_t": firing.threshold_t, "t_score": firing.t_score,
                  "t_se": firing.t_se, "details": dumps(firing.details), "last_session_id": session_id,
                  "updated_at": now}
        if action == "update":
            store.update_alert(conn, existing.id, **values)
            return None
        if action not in ("open", "reopen"):
            return None
        a = store.insert_alert(conn, tenant=tenant, patient_ref=patient, bank_id=bank_id, rule=firing.rule,
                               session_id=session_id, opened_at=now,
                               reopens=existing.id if action == "reopen" else None, **values)
        outbox.enqueue(conn, tenant=tenant, alert_id=a.id, event="alert.opened", payload=webhook_payload(a),
                       now=now)
        return a


def _baseline(earlier, marked):
    """The clinician-marked baseline sitting if any, else the first scored sitting before this one."""
    if marked is not None:
        for h in earlier:
            if h.session_id == marked.session_id:
                return h
    return earlier[0] if earlier else None


def webhook_payload(a) -> str:
    """Ids and scores only: never answers, never item content."""
    return json.dumps({
        "event": "alert.opened", "alert_id": a.id, "reopens": a.reopens, "tenant": a.tenant,
        "patient": a.patient_ref, "bank_id": a.bank_id, "rule": a.rule, "certainty": a.certainty,
        "threshold_t": a.threshold_t, "t_score": a.t_score, "t_se": a.t_se, "session_id": a.session_id,
        "opened_at": iso(a.opened_at)}, separators=(",", ":"))

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
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import OperationalError

from cat_prom.jsonable import dumps

if TYPE_CHECKING:
    from cat_prom.clinical.rules import RuleConfig

from ..store import clinical as store
from ..store import outbox
from .common import ALERT_DEFAULTS, DEFAULT_MID_T, iso

log = logging.getLogger("cat_prom.api.clinical")


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


def rule_config(settings, bank_settings) -> "RuleConfig":
    """The engine's :class:`~cat_prom.clinical.rules.RuleConfig` of a tenant's settings."""
    from cat_prom.clinical.rules import RULES, RuleConfig

    mids = {b: s.mid_t for b, s in bank_settings.items() if s.mid_t is not None}
    rules = {r: {"enabled": r in settings.enabled_rules} for r in RULES}
    rules["abandoned_sittings"]["n"] = settings.abandoned_n
    return RuleConfig.from_dict({"certainty": settings.certainty, "mid_t": {"default": DEFAULT_MID_T, **mids},
                                 "rules": rules})


def _score(rec, bank):
    from cat_prom.clinical.rules import DomainScore
    return DomainScore.from_result({"status": rec.status, "t_score": rec.t_score, "t_se": rec.t_se}, bank)


class EvaluateMixin:
    def on_finished(self, conn, *, tenant: str, patient: str, session_id: str, battery, now: dt.datetime) -> list:
        """Store the sitting's domain results and run the alert rules; returns the alerts opened.

        The rules run in a savepoint: should they fail on something unforeseen (a bug, not the
        database going away), their writes are undone and logged as an error, and the answer and
        the domain results still commit: a patient is never left unable to finish a sitting."""
        store.lock_patient(conn, self.db.is_postgres, tenant, patient)
        store.insert_domain_results(conn, domain_result_rows(tenant, patient, session_id, battery, now))
        try:
            with store.savepoint(conn):
                return self._evaluate(conn, tenant, patient, session_id, battery, now)
        except OperationalError:
            raise  # the database is unavailable: the answer fails too (503) and is retried whole
        except Exception as e:
            log.error("alert rules failed for session %s (%s); the answer and its scores were kept, no alert "
                      "was evaluated", session_id, type(e).__name__)
            return []

    def _evaluate(self, conn, tenant, patient, session_id, battery, now) -> list:
        from cat_prom.clinical.rules import DomainScore, evaluate_domain

        settings = store.alert_settings(conn, tenant, ALERT_DEFAULTS)
        bank_settings = store.bank_settings(conn, tenant)
        config = rule_config(settings, bank_settings)
        scored = [(s, DomainScore.from_session(s)) for s in battery.sessions]
        scored = [(s, current) for s, current in scored if current.scored]  # no answers: never a score alert
        if not scored:
            return []
        bank_ids = [s.bank.id for s, _ in scored]
        # Everything the rules compare with, for all domains at once: a few queries per sitting,
        # however many domains and however long the patient's history; the newest alerts only when
        # a rule fired (nothing is written before, so reading them later sees the same rows).
        baselines = store.current_baselines(conn, tenant, patient)
        earlier = store.previous_and_first(conn, tenant, patient, bank_ids, exclude_session=session_id,
                                           also_sessions=[baselines[b].session_id for b in bank_ids if b in baselines])
        levels = store.current_acceptables(conn, tenant, patient, bank_ids)
        fired = []  # (bank, record) of every rule that fired, in domain order
        for s, current in scored:
            bank = s.bank
            found = earlier[bank.id]
            previous = found.get("previous")
            marked = baselines.get(bank.id)
            # the clinician-marked baseline sitting if it was scored, else the first scored sitting before this one
            baseline = (found.get(marked.session_id) if marked is not None else None) or found.get("first")
            acceptable_t, _ = self._acceptable_from(levels.get(bank.id), bank_settings.get(bank.id))
            records = evaluate_domain(current, config=config, acceptable_t=acceptable_t,
                                      previous=None if previous is None else _score(previous, bank),
                                      baseline=None if baseline is None else _score(baseline, bank))
            fired += [(bank, rec) for rec in records]
        if not fired:
            return []  # nothing to open or update: the patient's alerts need not be read
        latest = store.latest_alerts(conn, tenant, patient, list(dict.fromkeys(bank.id for bank, _ in fired)))
        opened = []
        for bank, rec in fired:
            a = self._apply(conn, tenant, patient, bank.id, session_id, rec, mid=config.mid(bank.id), now=now,
                            existing=latest.get((bank.id, rec["rule"])))
            if a is not None:
                opened.append(a)
        return opened

    def on_abandoned(self, conn, *, tenant: str, patient: str, session_id: str, recent, now: dt.datetime) -> list:
        """The optional ``abandoned_sittings`` rule, run when a sitting is abandoned: the patient's last
        n sittings were all abandoned or expired. ``recent(n)`` gives the statuses of the patient's n
        newest sittings, newest first (sittings past their expiry as ``expired``)."""
        from cat_prom.clinical.rules import evaluate_abandoned

        settings = store.alert_settings(conn, tenant, ALERT_DEFAULTS)
        if "abandoned_sittings" not in settings.enabled_rules:
            return []
        store.lock_patient(conn, self.db.is_postgres, tenant, patient)
        config = rule_config(settings, {})
        statuses = [st for st in reversed(recent(settings.abandoned_n + 1)) if st != "in_progress"]
        rec = evaluate_abandoned(statuses, config=config)
        if rec is None:
            return []
        a = self._apply(conn, tenant, patient, store.SITTING, session_id, rec, mid=config.mid(""), now=now,
                        existing=store.latest_alert(conn, tenant, patient, store.SITTING, rec["rule"]))
        return [a] if a is not None else []

    def _apply(self, conn, tenant, patient, bank_id, session_id, rec: dict, *, mid: float, now, existing):
        """Open, update or re-open the alert for (patient, domain, rule) as the engine's
        :func:`~cat_prom.clinical.dedupe.decide` says; a new alert is queued for the webhooks.
        ``existing``: the newest alert for (patient, domain, rule), None when there is none.
        Returns the new alert or None."""
        from cat_prom.clinical.dedupe import decide

        live = None
        if existing is not None:
            live = {"status": existing.status}
            if existing.ack_record is not None:
                live["acknowledged_record"] = json.loads(existing.ack_record)
        action = decide(live, rec, mid=mid).action
        values = {"certainty": rec["certainty"], "threshold_t": rec["threshold_t"], "t_score": rec["t_score"],
                  "t_se": rec["t_se"], "details": dumps(rec), "last_session_id": session_id, "updated_at": now}
        if action == "update":
            store.update_alert(conn, existing.id, **values)
            return None
        a = store.insert_alert(conn, tenant=tenant, patient_ref=patient, bank_id=bank_id, rule=rec["rule"],
                               session_id=session_id, opened_at=now,
                               reopens=existing.id if action == "reopen" else None, **values)
        outbox.enqueue(conn, tenant=tenant, alert_id=a.id, event="alert.opened", payload=webhook_payload(a),
                       now=now)
        return a


def webhook_payload(a) -> str:
    """Ids and scores only: never answers, never item content."""
    return json.dumps({
        "event": "alert.opened", "alert_id": a.id, "reopens": a.reopens, "tenant": a.tenant,
        "patient": a.patient_ref, "bank_id": a.bank_id, "rule": a.rule, "certainty": a.certainty,
        "threshold_t": a.threshold_t, "t_score": a.t_score, "t_se": a.t_se, "session_id": a.session_id,
        "opened_at": iso(a.opened_at)}, separators=(",", ":"))

"""Export and erasure of one patient's data (a data-protection officer's requests).

Export gathers every row the store holds about the patient (:data:`api.store.patient_data.PATIENT_TABLES`)
as JSON: sittings with their answers and per-domain results, acceptable levels, baselines,
personal goals with their GAS ratings and scores, alerts, links (never their tokens), and the
metadata of webhook deliveries about the patient's alerts. Erasure deletes all of it in one
transaction and replaces the patient's reference in the audit log by a pseudonym
(:func:`pseudonym`); both requests are themselves in the audit log. No SQL here.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from .store import SessionStore, utcnow

_JSON_COLUMNS = ("config", "result", "bank_ids", "details", "ack_record", "enabled_rules")


def pseudonym(secret_key: str | None, tenant: str, patient: str) -> str:
    """``erased:<32 hex>``: an HMAC-SHA256 of (tenant, patient) under ``CAT_PROM_SECRET_KEY``, so whoever
    holds that key can still find an erased patient's audit rows from their reference, and nobody else
    can. Without the key the pseudonym is random: the rows stay together but no longer point to anyone."""
    if not secret_key:
        return "erased:" + secrets.token_hex(16)
    mac = hmac.new(secret_key.encode(), b"cat-prom erasure\x00" + f"{tenant}\x00{patient}".encode(), hashlib.sha256)
    return "erased:" + mac.hexdigest()[:32]


def _decoded(row: dict) -> dict:
    out = dict(row)
    for k in _JSON_COLUMNS:
        if isinstance(out.get(k), str):
            try:
                out[k] = json.loads(out[k])
            except ValueError:
                pass
    return out


def export_patient(store: SessionStore, clinical, tenant: str, patient: str) -> dict:
    """All of the patient's data in the tenant, as a JSON-ready dict."""
    data = {name: [_decoded(r) for r in rows] for name, rows in store.patient_data(tenant, patient).items()}
    answers: dict[str, list] = {}
    for r in data["responses"]:
        answers.setdefault(r["session_id"], []).append({k: v for k, v in r.items() if k != "session_id"})
    results: dict[str, list] = {}
    for r in data["domain_results"]:
        results.setdefault(r["session_id"], []).append(
            {k: v for k, v in r.items() if k not in ("session_id", "tenant", "patient_ref")})
    sittings = [{**{k: v for k, v in s.items() if k not in ("tenant", "patient_ref")},
                 "answers": answers.get(s["id"], []), "domain_results": results.get(s["id"], [])}
                for s in data["sessions"]]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("tenant", "patient_ref")} for r in rows]  # noqa: E731
    goals = clinical.personal_goals(tenant, patient, include_archived=True)
    return {
        "patient": patient,
        "tenant": tenant,
        "exported_at": utcnow().isoformat(),
        "sittings": sittings,
        "acceptable_levels": strip(data["acceptable_levels"]),
        "baselines": strip(data["baselines"]),
        "personal_goals": goals["goals"],
        "gas": goals["gas"],
        "alerts": strip(data["alerts"]),
        "links": strip(data["patient_links"]),
        "webhook_deliveries": [
            {"alert_id": o["alert_id"], "event": o["event"], "endpoint_id": o["endpoint_id"], "status": o["status"],
             "attempts": o["attempts"], "created_at": o["created_at"], "delivered_at": o["delivered_at"],
             "tries": [{k: d[k] for k in ("attempt", "status_code", "error", "duration_ms", "at")}
                       for d in data["deliveries"] if d["outbox_id"] == o["id"]]}
            for o in data["outbox"]],
    }


def erase_patient(store: SessionStore, secret_key: str | None, tenant: str, patient: str) -> dict:
    """Delete all of the patient's data; returns the pseudonym now in the audit log and rows deleted per table."""
    alias = pseudonym(secret_key, tenant, patient)
    counts = store.erase_patient(tenant, patient, alias)
    return {"patient": patient, "erased_at": utcnow().isoformat(), "audit_pseudonym": alias,
            "audit_rows_pseudonymised": counts.pop("audit_log"), "deleted": counts}

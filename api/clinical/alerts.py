"""Alerts for clinicians (list, acknowledge, rate per 100 sittings), the tenant's rule settings and
clinic defaults per bank (admin), and webhook endpoints (admin)."""
from __future__ import annotations

import datetime as dt
import json

from ..problems import Problem
from ..store import clinical as store
from ..store import outbox
from .common import ALERT_DEFAULTS, DEFAULT_MID_T, RULES, Base, iso, plain


def render_alert(a) -> dict:
    d = plain(a, drop=("tenant", "details", "ack_record"), rename={"patient_ref": "patient"})
    rec = json.loads(a.details)
    d["details"] = {"certainty_required": rec.get("certainty_required"),
                    "certainty_method": rec.get("certainty_method"), **(rec.get("values") or {})}
    return d


class AlertsMixin(Base):
    alert_defaults = ALERT_DEFAULTS

    # ------------------------------------------------------------------------- clinicians
    def alerts(self, tenant: str, args: dict) -> dict:
        with self.db.read() as conn:
            rows = store.list_alerts(conn, tenant, status=args.get("status"), patient=args.get("patient"),
                                     bank_id=args.get("bank_id"), rule=args.get("rule"), since=args.get("since"),
                                     limit=args["limit"], offset=args["offset"])
        return {"alerts": [render_alert(a) for a in rows], "limit": args["limit"], "offset": args["offset"]}

    def alert(self, tenant: str, alert_id: str) -> dict:
        with self.db.read() as conn:
            a = store.get_alert(conn, tenant, alert_id)
        if a is None:
            raise Problem("alert-not-found", "No alert with this id in your tenant.")
        return render_alert(a)

    def acknowledge(self, principal, alert_id: str, note: str) -> dict:
        with self.db.write() as conn:
            a = store.get_alert(conn, principal.tenant, alert_id)
            if a is None:
                raise Problem("alert-not-found", "No alert with this id in your tenant.")
            if a.status == store.OPEN:
                store.acknowledge_alert(conn, principal.tenant, alert_id, by=principal.key_id, note=note,
                                        now=self.now())
            elif a.note != note:
                raise Problem("alert-acknowledged", "This alert was already acknowledged "
                              f"({iso(a.acknowledged_at)}); a repeated acknowledgement must carry the same note.")
            a = store.get_alert(conn, principal.tenant, alert_id)
        return render_alert(a)

    def alert_stats(self, tenant: str, since: dt.datetime, until: dt.datetime) -> dict:
        """Alerts opened per 100 finished sittings, by rule, in [since, until)."""
        with self.db.read() as conn:
            n = store.count_finished_sittings(conn, tenant, since, until)
            counts = store.alert_counts(conn, tenant, since, until)
            enabled = store.alert_settings(conn, tenant, self.alert_defaults).enabled_rules
        rules = sorted(set(enabled) | set(counts))
        per = [{"rule": r, "enabled": r in enabled, "alerts": counts.get(r, 0),
                "per_100_sittings": round(100.0 * counts.get(r, 0) / n, 2) if n else None} for r in rules]
        total = sum(counts.values())
        return {"since": iso(since), "until": iso(until), "finished_sittings": n, "alerts": total,
                "per_100_sittings": round(100.0 * total / n, 2) if n else None, "by_rule": per}

    # ------------------------------------------------------------------------------ admin
    def settings(self, tenant: str) -> dict:
        with self.db.read() as conn:
            a = store.alert_settings(conn, tenant, self.alert_defaults)
            banks = store.bank_settings(conn, tenant)
        return {"alerts": self._alert_settings(a), "banks": [self._bank_settings(b, banks.get(b))
                                                             for b in sorted(self.registry.banks)]}

    def put_alert_settings(self, principal, args: dict) -> dict:
        unknown = [r for r in args["enabled_rules"] if r not in RULES]
        if unknown:
            raise Problem("validation-error", f"Unknown rule {unknown[0]!r}; rules are {list(RULES)}.",
                          errors={"enabled_rules": [f"one of {list(RULES)}"]})
        with self.db.write() as conn:
            store.put_alert_settings(conn, principal.tenant, enabled_rules=list(dict.fromkeys(args["enabled_rules"])),
                                     certainty=args["certainty"], abandoned_n=args["abandoned_n"],
                                     gas_rho=args["gas_rho"], updated_by=principal.key_id, now=self.now())
            a = store.alert_settings(conn, principal.tenant, self.alert_defaults)
        return self._alert_settings(a)

    def put_bank_settings(self, principal, bank_id: str, args: dict) -> dict:
        self.bank(bank_id)
        with self.db.write() as conn:
            rec = store.put_bank_settings(conn, principal.tenant, bank_id,
                                          default_acceptable_t=args.get("default_acceptable_t"),
                                          mid_t=args.get("mid_t"), updated_by=principal.key_id, now=self.now())
        return self._bank_settings(bank_id, rec)

    @staticmethod
    def _alert_settings(a) -> dict:
        return {"enabled_rules": list(a.enabled_rules), "certainty": a.certainty, "abandoned_n": a.abandoned_n,
                "gas_rho": a.gas_rho, "updated_by": a.updated_by, "updated_at": iso(a.updated_at)}

    def _bank_settings(self, bank_id: str, rec) -> dict:
        return {"bank_id": bank_id, "default_acceptable_t": rec.default_acceptable_t if rec else None,
                "mid_t": rec.mid_t if rec and rec.mid_t is not None else DEFAULT_MID_T,
                "mid_source": "tenant" if rec and rec.mid_t is not None else "default",
                "updated_at": iso(rec.updated_at) if rec else None}

    # --------------------------------------------------------------------- webhook endpoints
    def webhooks(self, tenant: str) -> list[dict]:
        with self.db.read() as conn:
            return [plain(e, drop=("tenant",)) for e in outbox.list_endpoints(conn, tenant)]

    def create_webhook(self, principal, args: dict) -> dict:
        with self.db.write() as conn:
            ep, secret = outbox.create_endpoint(conn, tenant=principal.tenant, url=args["url"],
                                                description=args.get("description", ""),
                                                created_by=principal.key_id, now=self.now())
        return {**plain(ep, drop=("tenant",)), "secret": secret}

    def update_webhook(self, principal, endpoint_id: str, args: dict) -> dict:
        with self.db.write() as conn:
            ep = outbox.update_endpoint(conn, principal.tenant, endpoint_id, now=self.now(), url=args.get("url"),
                                        description=args.get("description"), active=args.get("active"))
        if ep is None:
            raise Problem("webhook-not-found", "No webhook endpoint with this id in your tenant.")
        return plain(ep, drop=("tenant",))

    def webhook_deliveries(self, tenant: str, endpoint_id: str, limit: int) -> list[dict]:
        with self.db.read() as conn:
            if outbox.get_endpoint(conn, tenant, endpoint_id) is None:
                raise Problem("webhook-not-found", "No webhook endpoint with this id in your tenant.")
            return [plain(d) for d in outbox.endpoint_deliveries(conn, tenant, endpoint_id, limit)]

"""The clinician's triage list and the clinical annotations of a patient's results over time."""
from __future__ import annotations

from ..store import clinical as store
from .common import DEFAULT_MID_T, Base, iso
from .alerts import render_alert


def change_between(earlier, later, *, direction: str, mid: float) -> dict:
    """ΔT from one scored domain result to a later one, by the engine (:func:`cat_prom.clinical.change.change`)."""
    from cat_prom.clinical.change import change

    c = change(earlier.t_score, earlier.t_se, later.t_score, later.t_se, direction=direction, mid=mid)
    return {"from_session_id": earlier.session_id, "from_finished_at": iso(earlier.finished_at), **c.to_dict()}


class PatientsMixin(Base):
    def _mids(self, conn, tenant: str) -> dict[str, float]:
        return {b: (s.mid_t if s.mid_t is not None else DEFAULT_MID_T) for b, s in store.bank_settings(conn, tenant).items()}

    def _changes(self, history, baselines, mids) -> dict[str, dict]:
        """session id -> {previous, baseline} changes of one patient's scored results in one bank (oldest first)."""
        out: dict[str, dict] = {}
        for i, r in enumerate(history):
            mid = mids.get(r.bank_id, DEFAULT_MID_T)
            prev = history[i - 1] if i > 0 else None
            marked = baselines.get(r.bank_id)
            base = next((h for h in history[:i] if marked is not None and h.session_id == marked.session_id), None)
            if base is None and i > 0:
                base = history[0]
            out[r.session_id] = {
                "previous": change_between(prev, r, direction=r.direction, mid=mid) if prev else None,
                "baseline": change_between(base, r, direction=r.direction, mid=mid) if base else None,
                "mid_t": mid,
            }
        return out

    # -------------------------------------------------------------------------- triage list
    def triage(self, tenant: str, limit: int, offset: int) -> dict:
        with self.db.read() as conn:
            patients = store.tenant_patients(conn, tenant)
            scored = store.tenant_scored_results(conn, tenant)
            open_alerts = store.open_alerts_by_patient(conn, tenant)
            last_answered = store.last_answered(conn, tenant)
            mids = self._mids(conn, tenant)
        series: dict[str, dict[str, list]] = {}  # patient -> bank -> scored results, oldest first
        for r in scored:
            series.setdefault(r.patient_ref, {}).setdefault(r.bank_id, []).append(r)
        alerts_by: dict[str, list] = {}
        for a in open_alerts:
            alerts_by.setdefault(a.patient_ref, []).append(a)
        rows = []
        for patient, last_finished in patients:
            domains, worst = [], 0.0
            for bank_id, hist in sorted(series.get(patient, {}).items()):
                last = hist[-1]
                ch = None
                if len(hist) > 1:
                    ch = change_between(hist[-2], last, direction=last.direction, mid=mids.get(bank_id, DEFAULT_MID_T))
                    if ch.get("direction") == "worse":
                        worst = max(worst, abs(ch["delta_t"]))
                domains.append({"bank_id": bank_id, "domain": last.domain, "t_score": last.t_score,
                                "t_se": last.t_se, "band": last.band, "finished_at": iso(last.finished_at),
                                "session_id": last.session_id, "change": ch})
            mine = sorted(sorted(alerts_by.get(patient, []), key=lambda a: (a.bank_id, a.rule)),
                          key=lambda a: a.opened_at, reverse=True)  # newest first; then by domain and rule
            rows.append({"patient": patient, "open_alerts": len(mine),
                         "alerts": [{"id": a.id, "bank_id": a.bank_id, "rule": a.rule, "certainty": a.certainty,
                                     "opened_at": iso(a.opened_at)} for a in mine],
                         "largest_worsening_t": worst, "last_finished_at": iso(last_finished),
                         "last_answered_at": iso(last_answered.get(patient, last_finished)), "domains": domains})
        rows.sort(key=lambda r: (-r["open_alerts"], -r["largest_worsening_t"], r["patient"]))
        return {"patients": rows[offset:offset + limit], "total": len(rows), "limit": limit, "offset": offset}

    # ------------------------------------------------------------------- results annotations
    def annotate_results(self, tenant: str, patient: str, body: dict) -> dict:
        """Add to each domain of each sitting its change (vs previous scored sitting and vs baseline),
        the patient's current goal for the domain, and the alerts this sitting opened or updated."""
        with self.db.read() as conn:
            history = store.patient_domain_results(conn, tenant, patient, scored_only=True)
            baselines = store.current_baselines(conn, tenant, patient)
            mids = self._mids(conn, tenant)
            alerts = store.list_alerts(conn, tenant, patient=patient, limit=10000)
            goals = {b: self.acceptable_t(conn, tenant, patient, b) for b in {h.bank_id for h in history}}
        by_bank: dict[str, list] = {}
        for h in history:
            by_bank.setdefault(h.bank_id, []).append(h)
        changes: dict[tuple[str, str], dict] = {}
        for bank_id, hist in by_bank.items():
            for sid, ch in self._changes(hist, baselines, mids).items():
                changes[(sid, bank_id)] = ch
        for s in body["sessions"]:
            for r in s.get("results") or []:
                key = (s["session_id"], r.get("bank_id"))
                r["change"] = changes.get(key)
                t, source = goals.get(r.get("bank_id"), (None, None))
                if t is None and r.get("bank_id") not in goals:
                    with self.db.read() as conn:
                        t, source = self.acceptable_t(conn, tenant, patient, r.get("bank_id"))
                r["goal"] = {"t_score": t, "source": source} if t is not None else None
                r["alerts"] = [render_alert(a) for a in alerts if a.bank_id == r.get("bank_id")
                               and s["session_id"] in (a.session_id, a.last_session_id)]
        return body

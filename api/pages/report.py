"""The patient report's content, assembled once for HTML, JSON and PDF (no SQL, no arithmetic of
its own: scores, changes, MIDs, goals, GAS and alerts come from the session and clinical services).

``build_report(tenant, patient)`` returns a plain dict:

- ``domains``: per bank, every finished sitting as a point (``t_score``/``t_se``/``band``, or
  ``status: not_scored`` with its reason and no number), the change from the previous sitting
  (``reaches_mid`` marks the points whose change reaches the MID), the severity bands, the
  patient's acceptable level;
- ``balance``: at each visit, pain, function and side effects, each as the worst of its domains'
  distance from the patient's acceptable level, in T points on the side of "worse" (positive: worse
  than acceptable, negative: better);
- ``personal_goals`` (GAS goals, ratings and the GAS T series), ``open_alerts``, ``latest``: the
  most recent sitting item by item with each domain's stop reason;
- ``disclaimers`` of the banks involved (demo banks say so).
"""
from __future__ import annotations

from flask import current_app

from cat_prom.errors import CatPromError

#: The balance view's groups, by bank id (the demo banks'); a bank in none of them is left out of it.
BALANCE_GROUPS = (
    ("pain", ("pain-intensity", "pain-interference")),
    ("function", ("physical-function",)),
    ("side effects", ("constipation", "nausea", "drowsiness")),
)
MAX_SITTINGS = 100_000  #: every finished sitting (the service lists them oldest first)


def _ext():
    return current_app.extensions["cat_prom"]


def build_report(tenant: str, patient: str) -> dict:
    ext = _ext()
    body = ext.sessions.patient_results(tenant, patient, MAX_SITTINGS, 0)
    body = ext.clinical.annotate_results(tenant, patient, body)
    sittings = body["sessions"]
    goals = {g["bank_id"]: g for g in ext.clinical.goals(tenant, patient)["current"]}
    alerts = ext.clinical.alerts(tenant, {"status": "open", "patient": patient, "limit": 500, "offset": 0})["alerts"]
    domains = _domains(sittings, goals)
    bank_ids = [d["bank_id"] for d in domains]
    disclaimers = []
    for b in bank_ids:
        bank = ext.registry.banks.get(b)
        if bank is not None and bank.disclaimer and bank.disclaimer not in disclaimers:
            disclaimers.append(bank.disclaimer)
    return {
        "patient": patient,
        "date_range": {"from": sittings[0]["finished_at"] if sittings else None,
                       "to": sittings[-1]["finished_at"] if sittings else None},
        "n_sittings": len(sittings),
        "demo": any(getattr(ext.registry.banks.get(b), "demo", False) for b in bank_ids),
        "disclaimers": disclaimers,
        "domains": domains,
        "balance": _balance(sittings, goals),
        "personal_goals": ext.clinical.personal_goals(tenant, patient),
        "open_alerts": sorted((_alert_view(a) for a in alerts), key=lambda a: (a["domain"], a["rule"])),
        "latest": _latest(tenant, sittings[-1]) if sittings else None,
    }


def _domains(sittings: list[dict], goals: dict) -> list[dict]:
    reg = _ext().registry
    out: dict[str, dict] = {}
    for s in sittings:
        for r in s.get("results") or []:
            b = r["bank_id"]
            if b not in out:
                bank = reg.banks.get(b)
                goal = goals.get(b)
                out[b] = {"bank_id": b, "domain": r.get("domain") or b, "direction": r.get("direction"),
                          "bands": [{"label": x.label, "min_t": x.min_t, "max_t": x.max_t}
                                    for x in (bank.bands if bank else ())],
                          "acceptable": ({"t_score": goal["t_score"], "source": goal["source"],
                                          "agreed_by": goal.get("agreed_by"), "band": goal.get("band")}
                                         if goal else None),
                          "points": []}
            prev = (r.get("change") or {}).get("previous")
            out[b]["points"].append({
                "session_id": s["session_id"], "finished_at": s["finished_at"], "status": r.get("status"),
                "status_reason": r.get("status_reason"),
                "t_score": r.get("t_score") if r.get("status") == "scored" else None,
                "t_se": r.get("t_se") if r.get("status") == "scored" else None,
                "band": r.get("band") if r.get("status") == "scored" else None,
                "change": prev, "reaches_mid": bool(prev and prev.get("reaches_mid")),
                "change_direction": prev.get("direction") if prev else None})
    return list(out.values())


def _worse_than_acceptable(r: dict, goal: dict | None) -> float | None:
    """T points beyond the acceptable level on the worse side (negative: better than acceptable)."""
    if goal is None or r.get("status") != "scored" or r.get("t_score") is None:
        return None
    d = r["t_score"] - goal["t_score"]
    return d if r.get("direction") == "higher_is_worse" else -d


def _balance(sittings: list[dict], goals: dict) -> list[dict]:
    rows = []
    for s in sittings:
        by_bank = {r["bank_id"]: r for r in s.get("results") or []}
        groups = {}
        for name, banks in BALANCE_GROUPS:
            parts = [(b, _worse_than_acceptable(by_bank[b], goals.get(b))) for b in banks if b in by_bank]
            known = [(b, v) for b, v in parts if v is not None]
            if not parts:
                groups[name] = None  # not asked at this visit
            elif not known:
                groups[name] = {"worse_by_t": None, "bank_id": None,
                                "why": "no acceptable level set" if any(b not in goals for b, _ in parts)
                                else "not scored"}
            else:
                b, v = max(known, key=lambda x: x[1])
                groups[name] = {"worse_by_t": v, "bank_id": b, "why": None}
        rows.append({"session_id": s["session_id"], "finished_at": s["finished_at"], "groups": groups})
    return rows


def balance_has_values(rows: list[dict]) -> bool:
    """Whether any visit has a group with a distance from its acceptable level (else there is nothing to plot)."""
    return any(v is not None and v["worse_by_t"] is not None for r in rows for v in r["groups"].values())


def _alert_view(a: dict) -> dict:
    bank = _ext().registry.banks.get(a["bank_id"])
    return {**a, "domain": bank.domain if bank else a["bank_id"], "rule_text": RULE_TEXT.get(a["rule"], a["rule"])}


RULE_TEXT = {
    "above_acceptable": "worse than the patient's acceptable level",
    "worse_than_previous": "worse than the previous sitting by at least the MID",
    "worse_than_baseline": "worse than baseline by at least the MID",
    "severe_band": "in the severe band",
    "abandoned_sittings": "several sittings left unfinished",
}


def _latest(tenant: str, sitting: dict) -> dict:
    """The most recent finished sitting, item by item (question text and the answer's label)."""
    reg = _ext().registry
    domains = []
    for r in sitting.get("results") or []:
        bank = reg.banks.get(r["bank_id"])
        items = []
        for it in r.get("items") or []:
            stem, answer = it["item_id"], None
            if bank is not None:
                try:
                    item = bank.item(it["item_id"])
                except CatPromError:
                    item = None
                if item is not None:
                    stem = item.stem
                    answer = next((o["label"] for o in item.options() if o["value"] == it.get("value")), None)
            items.append({"item_id": it["item_id"], "stem": stem, "status": it.get("status"),
                          "value": it.get("value"), "answer": answer})
        domains.append({"bank_id": r["bank_id"], "domain": r.get("domain"), "status": r.get("status"),
                        "status_reason": r.get("status_reason"), "t_score": r.get("t_score"),
                        "t_se": r.get("t_se"), "band": r.get("band"), "stop_reason": r.get("stop_reason"),
                        "stop_detail": r.get("stop_detail"), "questions": items})
    return {"session_id": sitting["session_id"], "finished_at": sitting["finished_at"], "domains": domains}

"""Acceptable levels (per patient and domain, with their history), clinic defaults, baselines,
and personal goals with Goal Attainment Scaling."""
from __future__ import annotations

from ..problems import Problem
from ..store import clinical as store
from .common import Base, iso, plain

AGREED_BY = ("patient", "clinician", "both")
#: who may record what: a patient app speaks for the patient
RATED_BY = {"patient-app": "patient", "clinician": "clinician"}


def band_bound(bank, label: str) -> float:
    """The T bound of severity band ``label``: the worst T still inside it (its upper edge where
    higher is worse, its lower edge where higher is better)."""
    for band in bank.bands:
        if band.label == label:
            edge = band.max_t if bank.direction == "higher_is_worse" else band.min_t
            if edge is None:
                raise Problem("validation-error", f"Band {label!r} of bank {bank.id!r} is open-ended, so it sets no "
                              f"limit; give `t_score` or a band with a bound.", errors={"band": ["open-ended band"]})
            return float(edge)
    labels = [b.label for b in bank.bands]
    raise Problem("validation-error", f"Bank {bank.id!r} has no band {label!r}; its bands are {labels}.",
                  errors={"band": [f"one of {labels}"]})


class GoalsMixin(Base):
    # ------------------------------------------------------------------ acceptable levels
    def put_acceptable(self, principal, patient: str, bank_id: str, args: dict) -> dict:
        bank = self.bank(bank_id)
        agreed_by = args["agreed_by"]
        if principal.role == "patient-app" and agreed_by == "clinician":
            raise Problem("forbidden", "A patient app records the patient's own agreement: use `agreed_by` "
                                       "`patient` or `both`.")
        band = args.get("band")
        t_bound = band_bound(bank, band) if band is not None else float(args["t_score"])
        with self.db.write() as conn:
            rec = store.add_acceptable_level(
                conn, tenant=principal.tenant, patient_ref=patient, bank_id=bank_id, t_bound=t_bound, band=band,
                agreed_by=agreed_by, note=args.get("note", ""), set_by=principal.key_id, set_role=principal.role,
                set_at=self.now())
        return self._level(rec, bank)

    def goals(self, tenant: str, patient: str) -> dict:
        with self.db.read() as conn:
            history = store.acceptable_history(conn, tenant, patient)
            defaults = store.bank_settings(conn, tenant)
        current: dict[str, dict] = {}
        for rec in history:  # newest first
            if rec.bank_id not in current:
                current[rec.bank_id] = self._level(rec, self.registry.banks.get(rec.bank_id))
        for bank_id, s in defaults.items():
            if bank_id not in current and s.default_acceptable_t is not None:
                bank = self.registry.banks.get(bank_id)
                current[bank_id] = {"bank_id": bank_id, "domain": bank.domain if bank else None,
                                    "direction": bank.direction if bank else None,
                                    "t_score": s.default_acceptable_t, "band": None, "source": "clinic_default",
                                    "agreed_by": None, "note": "", "set_at": iso(s.updated_at)}
        return {"patient": patient, "current": [current[b] for b in sorted(current)],
                "history": [self._level(r, self.registry.banks.get(r.bank_id)) for r in history]}

    def acceptable_t(self, conn, tenant: str, patient: str, bank_id: str,
                     bank_settings: dict | None = None) -> tuple[float | None, str | None]:
        """The patient's current acceptable T for a bank and where it comes from (``patient`` or
        ``clinic_default``), or (None, None). ``bank_settings``: the tenant's, if already read."""
        rec = store.current_acceptable(conn, tenant, patient, bank_id)
        if rec is not None:
            return self._acceptable_from(rec, None)
        if bank_settings is None:
            bank_settings = store.bank_settings(conn, tenant)
        return self._acceptable_from(None, bank_settings.get(bank_id))

    @staticmethod
    def _acceptable_from(level, bank_setting) -> tuple[float | None, str | None]:
        """The acceptable T from the patient's own level if set, else the clinic's default for the bank."""
        if level is not None:
            return level.t_bound, "patient"
        if bank_setting is not None and bank_setting.default_acceptable_t is not None:
            return bank_setting.default_acceptable_t, "clinic_default"
        return None, None

    @staticmethod
    def _level(rec, bank) -> dict:
        return {"bank_id": rec.bank_id, "domain": bank.domain if bank else None,
                "direction": bank.direction if bank else None, "t_score": rec.t_bound, "band": rec.band,
                "source": "patient", "agreed_by": rec.agreed_by, "note": rec.note, "set_by": rec.set_by,
                "set_role": rec.set_role, "set_at": iso(rec.set_at)}

    # --------------------------------------------------------------------------- baselines
    def mark_baseline(self, principal, patient: str, bank_id: str, session_id: str) -> dict:
        self.bank(bank_id)
        with self.db.write() as conn:
            results = {r.bank_id: r for r in store.session_domain_results(conn, principal.tenant, session_id)}
            r = results.get(bank_id)
            if r is None or r.patient_ref != patient:
                raise Problem("not-found", "No finished sitting with this id for this patient and domain.")
            if r.status != "scored":
                raise Problem("validation-error", "This domain was not scored in that sitting, so it cannot be a "
                              "baseline.", errors={"session_id": ["domain not scored in this sitting"]})
            rec = store.add_baseline(conn, tenant=principal.tenant, patient_ref=patient, bank_id=bank_id,
                                     session_id=session_id, set_by=principal.key_id, set_at=self.now())
        return plain(rec, drop=("id", "tenant"), rename={"patient_ref": "patient"})

    # ----------------------------------------------------------------------- personal goals
    def create_goal(self, principal, patient: str, args: dict) -> dict:
        with self.db.write() as conn:
            goal = store.create_goal(conn, tenant=principal.tenant, patient=patient, title=args["title"],
                                     weight=args["weight"], levels=args["levels"], created_by=principal.key_id,
                                     now=self.now())
        return self._goal(goal, [])

    def _goal_or_404(self, conn, tenant: str, patient: str, goal_id: str):
        goal = store.get_goal(conn, tenant, goal_id)
        if goal is None or goal.patient_ref != patient:
            raise Problem("not-found", "No personal goal with this id for this patient.")
        return goal

    def update_goal(self, principal, patient: str, goal_id: str, args: dict) -> dict:
        with self.db.write() as conn:
            goal = self._goal_or_404(conn, principal.tenant, patient, goal_id)
            if goal.archived_at is not None:
                raise Problem("conflict", "This goal is archived; create a new one.")
            store.update_goal(conn, principal.tenant, goal_id, title=args.get("title"), weight=args.get("weight"),
                              levels=args.get("levels"))
            goal = store.get_goal(conn, principal.tenant, goal_id)
            rs = store.ratings(conn, [goal_id])
        return self._goal(goal, rs)

    def archive_goal(self, principal, patient: str, goal_id: str) -> None:
        with self.db.write() as conn:
            goal = self._goal_or_404(conn, principal.tenant, patient, goal_id)
            if goal.archived_at is None:
                store.update_goal(conn, principal.tenant, goal_id, archived_at=self.now())

    def rate_goal(self, principal, patient: str, goal_id: str, args: dict) -> dict:
        now = self.now()
        rated_on = args.get("rated_on") or now.date()
        if rated_on > now.date():
            raise Problem("validation-error", "`rated_on` is in the future.", errors={"rated_on": ["in the future"]})
        with self.db.write() as conn:
            goal = self._goal_or_404(conn, principal.tenant, patient, goal_id)
            if goal.archived_at is not None:
                raise Problem("conflict", "This goal is archived; it takes no more ratings.")
            rec = store.add_rating(conn, goal_id=goal_id, level=args["level"], rated_by=RATED_BY[principal.role],
                                   key_id=principal.key_id, rated_on=rated_on, note=args.get("note", ""),
                                   created_at=now)
        return self._rating(rec)

    def personal_goals(self, tenant: str, patient: str, *, include_archived: bool = False) -> dict:
        with self.db.read() as conn:
            goals = store.patient_goals(conn, tenant, patient, include_archived=include_archived)
            rs = store.ratings(conn, [g.id for g in goals])
            rho = store.alert_settings(conn, tenant, self.alert_defaults).gas_rho
        by_goal: dict[str, list] = {g.id: [] for g in goals}
        for r in rs:
            by_goal[r.goal_id].append(r)
        active = [g for g in goals if g.archived_at is None]
        return {"patient": patient, "goals": [self._goal(g, by_goal[g.id]) for g in goals],
                "gas": {"rho": rho, "series": gas_series(active, rs, rho)}}

    def _goal(self, goal, rs) -> dict:
        d = plain(goal, drop=("tenant",), rename={"patient_ref": "patient"})
        d["levels"] = {str(k): v for k, v in goal.levels.items()}
        d["ratings"] = [self._rating(r) for r in rs]
        return d

    @staticmethod
    def _rating(r) -> dict:
        return {"id": r.id, "level": r.level, "rated_by": r.rated_by, "rated_on": r.rated_on.isoformat(),
                "note": r.note, "key_id": r.key_id, "created_at": iso(r.created_at)}


def gas_series(goals, ratings, rho: float) -> list[dict]:
    """The GAS T-score on each date any active goal was rated: every goal rated by then counts with its
    latest rating on or before that date (goals not yet rated are left out, and ``n_goals`` says how
    many counted). The formula is the engine's (:func:`cat_prom.clinical.gas.gas_t_score`)."""
    from cat_prom.clinical.gas import gas_t_score

    weights = {g.id: g.weight for g in goals}
    latest: dict[str, int] = {}
    out = []
    dates = sorted({r.rated_on for r in ratings if r.goal_id in weights})
    rs = sorted((r for r in ratings if r.goal_id in weights), key=lambda r: (r.rated_on, r.id))
    i = 0
    for d in dates:
        while i < len(rs) and rs[i].rated_on <= d:
            latest[rs[i].goal_id] = rs[i].level
            i += 1
        ids = sorted(latest)
        out.append({"date": d.isoformat(), "n_goals": len(ids),
                    "t_score": float(gas_t_score([latest[g] for g in ids], [weights[g] for g in ids], rho=rho))})
    return out

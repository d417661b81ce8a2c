"""The batched reads a finishing sitting's rules use (api.store.clinical.previous_and_first,
current_acceptables, latest_alerts) against a direct computation over the full history: the same
answer as reading each domain's whole history, which is what the rules did before (one query per
domain and rule)."""
from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest

from api.store import clinical as store
from api.store.records import SessionRecord

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
BANKS = ["b1", "b2", "b3"]


def _history(db, rng, patient="p1", n=12):
    """Sittings of ``patient`` (and of a neighbour, who must never leak in) with random results;
    some finish at the same instant so the tie-break (session id) matters."""
    sids = []
    for i in range(n):
        for who in (patient, "other"):
            sid = f"s{i:02d}-{who}-{uuid.uuid4().hex[:6]}"
            at = T0 + dt.timedelta(days=rng.choice([i, i, i - 1 if i else i]))
            db.insert_session(SessionRecord(id=sid, tenant="t", patient_ref=who, status="finished", battery_id=None,
                                            bank_ids=BANKS, version=1, n_responses=1, created_at=at, updated_at=at,
                                            expires_at=at, finished_at=at, result=None), {"x": 1})
            rows = [{"session_id": sid, "bank_id": b, "tenant": "t", "patient_ref": who, "domain": b,
                     "direction": "higher_is_worse", "status": rng.choice(["scored", "scored", "not_scored"]),
                     "status_reason": None, "theta": rng.gauss(0, 1), "se": 0.3, "t_score": 50.0, "t_se": 3.0,
                     "band": None, "finished_at": at} for b in rng.sample(BANKS, rng.randint(1, 3))]
            with db.write() as conn:
                store.insert_domain_results(conn, rows)
            if who == patient:
                sids.append(sid)
    return sids


@pytest.mark.parametrize("db_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("seed", range(4))
def test_previous_and_first_equal_a_direct_reading_of_the_history(db_kind, seed, request, tmp_path):
    from api.store import SessionStore
    if db_kind == "sqlite":
        db = SessionStore(f"sqlite:///{tmp_path / 'q.sqlite'}")
    else:
        db = SessionStore(request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema"))
    db.migrate()
    rng = random.Random(seed)
    try:
        sids = _history(db, rng)
        current = rng.choice(sids)
        marked = rng.sample(sids, 2)
        with db.read() as conn:
            got = store.previous_and_first(conn, "t", "p1", BANKS, exclude_session=current, also_sessions=marked)
            for b in BANKS:
                history = [h for h in store.patient_domain_results(conn, "t", "p1", bank_id=b, scored_only=True)
                           if h.session_id != current]  # oldest first, ties by session id
                want = {}
                if history:
                    want["previous"], want["first"] = history[-1], history[0]
                for h in history:
                    if h.session_id in marked:
                        want[h.session_id] = h
                assert got[b] == want, b
            latest = store.last_scored_results(conn, "t", "p1", BANKS)
            for b in BANKS:
                history = store.patient_domain_results(conn, "t", "p1", bank_id=b, scored_only=True)
                assert latest.get(b) == (history[-1] if history else None)
    finally:
        db.dispose()


def test_current_acceptables_and_latest_alerts_take_the_newest_per_domain(tmp_path):
    from api.store import SessionStore
    db = SessionStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    db.migrate()
    try:
        with db.write() as conn:
            for i, (b, t) in enumerate([("b1", 60.0), ("b2", 55.0), ("b1", 62.0), ("b1", 58.0)]):
                store.add_acceptable_level(conn, tenant="t", patient_ref="p1", bank_id=b, t_bound=t, band=None,
                                           agreed_by="patient and clinician", note="", set_by="k", set_role="clinician",
                                           set_at=T0 + dt.timedelta(days=i))
            store.add_acceptable_level(conn, tenant="t", patient_ref="p2", bank_id="b3", t_bound=70.0, band=None,
                                       agreed_by="patient and clinician", note="", set_by="k", set_role="clinician", set_at=T0)
        with db.read() as conn:
            got = store.current_acceptables(conn, "t", "p1", BANKS)
            assert {b: x.t_bound for b, x in got.items()} == {"b1": 58.0, "b2": 55.0}
            assert store.current_acceptable(conn, "t", "p1", "b1").t_bound == 58.0
            assert store.current_acceptable(conn, "t", "p1", "b3") is None
            assert store.latest_alerts(conn, "t", "p1", BANKS) == {}
        made = {}
        with db.write() as conn:
            for i, (who, b, rule) in enumerate([("p1", "b1", "severe_band"), ("p1", "b1", "severe_band"),
                                                 ("p1", "b1", "above_acceptable"), ("p1", "b2", "severe_band"),
                                                 ("p2", "b3", "severe_band")]):
                at = T0 + dt.timedelta(days=i)
                if (who, b, rule) in made:  # one open alert per key: the older one is acknowledged first
                    store.update_alert(conn, made[(who, b, rule)], status="acknowledged", acknowledged_at=at)
                a = store.insert_alert(conn, tenant="t", patient_ref=who, bank_id=b, rule=rule, certainty=0.9,
                                       threshold_t=60.0, t_score=65.0, t_se=3.0, details="{}", session_id=None,
                                       last_session_id=None, reopens=None, opened_at=at, updated_at=at)
                made[(who, b, rule)] = a.id  # the newest of each key wins
        with db.read() as conn:
            got = store.latest_alerts(conn, "t", "p1", BANKS)
            assert {k: a.id for k, a in got.items()} == {(b, r): i for (w, b, r), i in made.items() if w == "p1"}
            assert store.latest_alert(conn, "t", "p1", "b1", "severe_band").id == made[("p1", "b1", "severe_band")]
    finally:
        db.dispose()

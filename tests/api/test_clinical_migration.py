"""Migration 0003 (clinical layer) creates exactly the tables the store declares, on top of 0002."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from api.store import SessionStore, metadata


def _describe(conn, tables):
    insp = sa.inspect(conn)
    out = {}
    for t in tables:
        cols = sorted((c["name"], str(c["type"]).split("(")[0], c["nullable"]) for c in insp.get_columns(t))
        idx = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t))
        out[t] = (cols, idx)
    return out


CLINICAL = ("domain_results", "acceptable_levels", "tenant_bank_settings", "alert_rule_settings", "baselines",
            "personal_goals", "goal_levels", "goal_ratings", "alerts", "webhook_endpoints", "outbox", "deliveries")


def _check(url, schema=None):
    migrated = SessionStore(url, schema=schema)
    migrated.migrate("0002")
    with migrated.read() as conn:
        assert not set(CLINICAL) & set(sa.inspect(conn).get_table_names())
    migrated.migrate("0003")
    with migrated.read() as conn:
        got = _describe(conn, CLINICAL)
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"
    migrated.dispose()
    return got


def test_0003_matches_the_declared_tables_sqlite(tmp_path):
    got = _check(f"sqlite:///{tmp_path / 'm.sqlite'}")
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'declared.sqlite'}")
    metadata.create_all(eng)
    with eng.connect() as conn:
        assert got == _describe(conn, CLINICAL)
    eng.dispose()


@pytest.mark.postgres
def test_0003_on_postgres(pg_url, pg_schema):
    got = _check(pg_url, schema=pg_schema)
    assert set(got) == set(CLINICAL)
    assert ("uq_alerts_open", ("tenant", "patient_ref", "bank_id", "rule"), True) in got["alerts"][1]


def test_0003_backfills_domain_results_and_unscores_answerless_domains(tmp_path):
    import datetime as dt
    import json

    url = f"sqlite:///{tmp_path / 'b.sqlite'}"
    store = SessionStore(url)
    store.migrate("0002")
    t = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
    scored = {"bank_id": "pain-intensity", "domain": "Pain intensity", "direction": "higher_is_worse",
              "theta": 0.5, "se": 0.3, "t_score": 55.0, "t_se": 3.0, "band": "mild", "n_answered": 5, "n_declined": 0}
    # an old result of a domain where every question was declined: it was reported as T 50
    declined = {"bank_id": "sleep-disturbance", "domain": "Sleep", "direction": "higher_is_worse", "theta": 0.0,
                "se": 1.0, "t_score": 50.0, "t_se": 10.0, "band": "within normal limits", "n_answered": 0,
                "n_declined": 3}
    with store.write() as conn:
        for sid, status, result in (("s-old", "finished", [scored, declined]), ("s-live", "in_progress", None)):
            conn.execute(sa.text(
                "INSERT INTO sessions (id, tenant, patient_ref, status, bank_ids, config, version, n_responses, "
                "created_at, updated_at, expires_at, finished_at, result) VALUES (:id, 'default', 'p-old', :st, "
                "'[]', '{}', 1, 8, :t, :t, :t, :f, :r)"),
                {"id": sid, "st": status, "t": t, "f": t if result else None,
                 "r": json.dumps(result) if result else None})
    store.migrate()
    with store.read() as conn:
        rows = {r.bank_id: r for r in conn.execute(sa.text("SELECT * FROM domain_results")).all()}
    assert set(rows) == {"pain-intensity", "sleep-disturbance"}
    assert rows["pain-intensity"].status == "scored" and rows["pain-intensity"].t_score == 55.0
    s = rows["sleep-disturbance"]
    assert (s.status, s.status_reason, s.t_score, s.band) == ("not_scored", "all_declined", None, None)
    with store.read() as conn:
        result = json.loads(conn.execute(sa.text("SELECT result FROM sessions WHERE id = 's-old'")).scalar_one())
    assert [(d["status"], d["t_score"]) for d in result] == [("scored", 55.0), ("not_scored", None)]
    assert result[1]["status_reason"] == "all_declined" and result[1]["band"] is None
    store.dispose()

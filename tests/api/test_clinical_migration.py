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

"""Migration 0004 (patient links, clinician web sessions) creates exactly the tables the store
declares, on top of 0003, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from api.store import SessionStore, metadata
from test_clinical_migration import _describe

PAGES = ("patient_links", "web_sessions")


def _check(url, schema=None):
    migrated = SessionStore(url, schema=schema)
    migrated.migrate("0003")
    with migrated.read() as conn:
        assert not set(PAGES) & set(sa.inspect(conn).get_table_names())
    migrated.migrate("0004")
    with migrated.read() as conn:
        got = _describe(conn, PAGES)
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
    migrated.dispose()
    return got


def test_0004_matches_the_declared_tables_sqlite(tmp_path):
    got = _check(f"sqlite:///{tmp_path / 'm.sqlite'}")
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'declared.sqlite'}")
    metadata.create_all(eng)
    with eng.connect() as conn:
        assert got == _describe(conn, PAGES)
    eng.dispose()


@pytest.mark.postgres
def test_0004_on_postgres(pg_url, pg_schema):
    got = _check(pg_url, schema=pg_schema)
    assert set(got) == set(PAGES)
    assert ("ix_patient_links_tenant_patient", ("tenant", "patient_ref"), False) in got["patient_links"][1]

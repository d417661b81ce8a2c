"""Migrations 0005 (audit_log), 0006 (api_keys.expires_at, last_used_at) and 0007 (simulation_jobs) create
exactly the tables the store declares, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from api.store import SessionStore, metadata
from test_clinical_migration import _describe

TABLES = ("audit_log", "api_keys", "simulation_jobs")


def _migrated(url, schema=None):
    s = SessionStore(url, schema=schema)
    s.migrate("0004")
    with s.read() as conn:
        assert not {"audit_log", "simulation_jobs"} & set(sa.inspect(conn).get_table_names())
    s.migrate()
    with s.read() as conn:
        got = _describe(conn, TABLES)
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0007"
    s.dispose()
    return got


def test_0005_to_0007_match_the_declared_tables_sqlite(tmp_path):
    got = _migrated(f"sqlite:///{tmp_path / 'm.sqlite'}")
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'declared.sqlite'}")
    metadata.create_all(eng)
    with eng.connect() as conn:
        assert got == _describe(conn, TABLES)
    eng.dispose()


@pytest.mark.postgres
def test_0005_to_0007_match_the_declared_tables_postgres(pg_url, pg_schema):
    got = _migrated(pg_url, schema=pg_schema)
    eng = sa.create_engine(pg_url, connect_args={"options": f"-csearch_path={pg_schema}_d"})
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{pg_schema}_d"'))
    try:
        with eng.begin() as conn:
            metadata.create_all(conn)
        with eng.connect() as conn:
            assert got == _describe(conn, TABLES)
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{pg_schema}_d" CASCADE'))
        eng.dispose()

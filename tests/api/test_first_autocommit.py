"""Database.first_autocommit on SQLite, where it runs the statement through Core (PostgreSQL's
driver-level path is in test_postgres.py)."""
from __future__ import annotations

import sqlalchemy as sa

from api.store import SessionStore


def test_first_row_or_none_on_sqlite(tmp_path):
    db = SessionStore(f"sqlite:///{tmp_path / 'f.sqlite'}")
    db.migrate()
    try:
        assert db._driver is None
        assert tuple(db.first_autocommit(sa.text("SELECT :a + 1"), {"a": 41})) == (42,)
        assert db.first_autocommit(sa.text("CREATE TABLE t (x INTEGER)"), {}) is None  # no rows
        assert db.first_autocommit(sa.text("INSERT INTO t VALUES (:x)"), {"x": 7}) is None
        assert tuple(db.first_autocommit(sa.text("SELECT x FROM t"), {})) == (7,)  # committed on its own
    finally:
        db.dispose()

"""Fixtures for the API tests: an app on a fresh SQLite file, banks, keys, a client.

PostgreSQL: tests marked ``postgres`` use the server at ``CAT_PROM_TEST_PG_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), each test in its
own schema. They are skipped when it is unreachable, unless ``CI=true``, where
a stopped local cluster is started first (tests/api/services.py) and an
unreachable server fails them.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apibanks import write_banks  # noqa: E402
from apihelpers import Keys, make_app  # noqa: E402
from services import PG_URL, ensure_pg, require  # noqa: E402


@pytest.fixture(scope="session")
def banks_dir(tmp_path_factory) -> Path:
    return write_banks(tmp_path_factory.mktemp("banks"))


@pytest.fixture
def app(tmp_path, banks_dir):
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'test.sqlite'}")
    yield app
    app.extensions["cat_prom"].store.dispose()


@pytest.fixture
def fhir_app(tmp_path, banks_dir):
    """An app with a fixed FHIR signing key (no key file is written to the instance folder)."""
    from fhirhelpers import SIGNING_KEY
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'fhir.sqlite'}", FHIR_SIGNING_KEY=SIGNING_KEY)
    yield app
    app.extensions["cat_prom"].store.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def keys(app):
    return Keys(app)


@pytest.fixture
def patient_h(keys):
    return keys["patient-app"]


@pytest.fixture(scope="session")
def pg_url():
    return require("PostgreSQL", PG_URL, ensure_pg(PG_URL))


@pytest.fixture
def pg_schema(pg_url):
    """A fresh schema for one test, dropped afterwards."""
    import sqlalchemy as sa
    schema = "t_" + uuid.uuid4().hex[:12]
    yield schema
    eng = sa.create_engine(pg_url)
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture
def pg_app(banks_dir, pg_url, pg_schema):
    app = make_app(banks_dir, pg_url, DATABASE_SCHEMA=pg_schema)
    yield app
    app.extensions["cat_prom"].store.dispose()

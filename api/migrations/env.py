"""Alembic environment: run with the connection the service passes in, or from CAT_PROM_DATABASE_URL."""
from __future__ import annotations

import os

from alembic import context

from api.store.tables import metadata

config = context.config


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    from api.store import SessionStore as Database  # stand-alone `alembic upgrade head`

    url = os.environ.get("CAT_PROM_DATABASE_URL")
    if not url:
        raise SystemExit("set CAT_PROM_DATABASE_URL to run migrations stand-alone")
    db = Database(url, schema=os.environ.get("CAT_PROM_DATABASE_SCHEMA") or None)
    with db.engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


run()

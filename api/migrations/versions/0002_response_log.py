"""Cheap answers: an immutable session config plus the append-only response log.

Before, every answer rewrote the session row with the engine's whole state document (design,
seed and the log so far), the next question and the results, and stored the whole reply with
the response row. Now ``sessions.config`` (the state without its log) is written once, an
answer updates only small columns, and ``responses`` rows hold just the answer; a sitting is
rebuilt by replaying config + log, and a retried answer's reply is rendered again from the log.

Existing rows are migrated: ``config`` is each session's ``state`` with the logs removed (the
``responses`` rows, written in the same transaction as every state since 0001, are the log).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen table shapes for the data step (never import the application's tables in a migration).
_sessions = sa.table("sessions", sa.column("id", sa.String), sa.column("state", sa.Text),
                     sa.column("config", sa.Text))


def _config_of(state: str) -> str:
    doc = json.loads(state)
    doc["sessions"] = [{k: v for k, v in s.items() if k != "log"} | {"log": []} for s in doc.get("sessions", [])]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def upgrade() -> None:
    # NOT NULL with a default, so that ADD COLUMN works on SQLite too.
    op.add_column("sessions", sa.Column("config", sa.Text, nullable=False, server_default="{}"))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_sessions.c.id, _sessions.c.state)).all()
    for sid, state in rows:
        bind.execute(_sessions.update().where(_sessions.c.id == sid).values(config=_config_of(state)))
    # Native ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): no table rebuild, so no DROP TABLE whose
    # implicit DELETE would cascade to the responses rows.
    op.drop_column("sessions", "state")
    op.drop_column("sessions", "question")
    op.drop_column("responses", "reply")


def downgrade() -> None:
    raise NotImplementedError("0002 drops the per-answer state copies; restore a backup to go back to 0001")

"""The service's tables (SQLAlchemy Core). The Alembic migrations in ``api/migrations`` create them.

``api_keys``   one row per API key; only a hash of the key is stored.
``sessions``   one row per CAT sitting. ``config`` (bank ids, designs, seed, exclusions: the
               engine's :meth:`Battery.to_dict` without its log) is written once, at creation.
               An answer changes only small columns: ``version`` (bumped by every change),
               ``n_responses``, ``status`` and the times; ``result`` is written once, when the
               sitting finishes.
``responses``  the append-only response log, one small row per accepted answer, keyed by
               ``(session_id, seq)`` (``seq`` = the number of the question answered), which makes a
               retried answer idempotent. A sitting is rebuilt by replaying ``config`` + this log
               (the posterior is a cache, see DESIGN.md).
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),     # None: never expires
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),   # to the minute (see api.keys)
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("battery_id", sa.String(100), nullable=True),
    sa.Column("bank_ids", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False, server_default="{}"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("n_responses", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result", sa.Text, nullable=True),
    sa.Index("ix_sessions_tenant_patient", "tenant", "patient_ref", "finished_at"),
)

responses = sa.Table(
    "responses", metadata,
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.String(100), nullable=False),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("declined", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

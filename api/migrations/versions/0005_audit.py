"""Audit log: who read or changed which patient's data (append-only; see api/store/audit.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", ts, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("web_session_id", sa.String(40), nullable=True),
        sa.Column("link_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("patient_ref", sa.String(200), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_tenant_at", "audit_log", ["tenant", "at"])
    op.create_index("ix_audit_tenant_patient", "audit_log", ["tenant", "patient_ref", "at"])
    op.create_index("ix_audit_tenant_key", "audit_log", ["tenant", "key_id", "at"])


def downgrade() -> None:
    for ix in ("ix_audit_tenant_key", "ix_audit_tenant_patient", "ix_audit_tenant_at"):
        op.drop_index(ix, table_name="audit_log")
    op.drop_table("audit_log")

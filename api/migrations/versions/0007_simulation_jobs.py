"""Simulation jobs run by the worker (api/store/jobs.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "simulation_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("started_at", ts, nullable=True),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", ts, nullable=True),
    )
    op.create_index("ix_simulation_jobs_tenant_status", "simulation_jobs", ["tenant", "status"])
    op.create_index("ix_simulation_jobs_due", "simulation_jobs", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_simulation_jobs_due", table_name="simulation_jobs")
    op.drop_index("ix_simulation_jobs_tenant_status", table_name="simulation_jobs")
    op.drop_table("simulation_jobs")

"""Clinical layer (issue 8): domain results, acceptable levels, settings, personal goals (GAS),
baselines, alerts, webhook endpoints, the alert outbox and its delivery log.

Existing finished sittings get their domain_results rows from their stored results, so change
over time includes them. A domain stored before "not scored" existed (no ``status`` key) is scored
only if the patient answered at least one of its questions; otherwise it becomes ``not_scored``
without a number (the T 50 such results used to carry had no evidence behind it), in the stored
session result too; scored domains gain ``"status": "scored"``. No alerts are raised for past
sittings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "domain_results",
        sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("bank_id", sa.String(100), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
        sa.Column("domain", sa.String(100), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(40), nullable=True),
        sa.Column("theta", sa.Float, nullable=True),
        sa.Column("se", sa.Float, nullable=True),
        sa.Column("t_score", sa.Float, nullable=True),
        sa.Column("t_se", sa.Float, nullable=True),
        sa.Column("band", sa.String(100), nullable=True),
        sa.Column("finished_at", TS, nullable=False),
    )
    op.create_index("ix_domain_results_patient", "domain_results", ["tenant", "patient_ref", "bank_id", "finished_at"])
    op.create_index("ix_domain_results_tenant_time", "domain_results", ["tenant", "finished_at"])
    op.create_table(
        "acceptable_levels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
        sa.Column("bank_id", sa.String(100), nullable=False),
        sa.Column("t_bound", sa.Float, nullable=False),
        sa.Column("band", sa.String(100), nullable=True),
        sa.Column("agreed_by", sa.String(16), nullable=False),
        sa.Column("note", sa.String(1000), nullable=False, server_default=""),
        sa.Column("set_by", sa.String(40), nullable=False),
        sa.Column("set_role", sa.String(20), nullable=False),
        sa.Column("set_at", TS, nullable=False),
    )
    op.create_index("ix_acceptable_levels_patient", "acceptable_levels", ["tenant", "patient_ref", "bank_id", "id"])
    op.create_table(
        "tenant_bank_settings",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("bank_id", sa.String(100), primary_key=True),
        sa.Column("default_acceptable_t", sa.Float, nullable=True),
        sa.Column("mid_t", sa.Float, nullable=True),
        sa.Column("updated_by", sa.String(40), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "alert_rule_settings",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("enabled_rules", sa.Text, nullable=False),
        sa.Column("certainty", sa.Float, nullable=False),
        sa.Column("abandoned_n", sa.Integer, nullable=False),
        sa.Column("gas_rho", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "baselines",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
        sa.Column("bank_id", sa.String(100), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("set_by", sa.String(40), nullable=False),
        sa.Column("set_at", TS, nullable=False),
    )
    op.create_index("ix_baselines_patient", "baselines", ["tenant", "patient_ref", "bank_id", "id"])
    op.create_table(
        "personal_goals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("archived_at", TS, nullable=True),
    )
    op.create_index("ix_personal_goals_patient", "personal_goals", ["tenant", "patient_ref"])
    op.create_table(
        "goal_levels",
        sa.Column("goal_id", sa.String(40), sa.ForeignKey("personal_goals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("text", sa.String(500), nullable=False),
    )
    op.create_table(
        "goal_ratings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("goal_id", sa.String(40), sa.ForeignKey("personal_goals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("rated_by", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("rated_on", sa.Date, nullable=False),
        sa.Column("note", sa.String(1000), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_goal_ratings_goal", "goal_ratings", ["goal_id", "rated_on"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
        sa.Column("bank_id", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("certainty", sa.Float, nullable=True),
        sa.Column("threshold_t", sa.Float, nullable=True),
        sa.Column("t_score", sa.Float, nullable=True),
        sa.Column("t_se", sa.Float, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("last_session_id", sa.String(40), nullable=True),
        sa.Column("reopens", sa.String(40), nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(40), nullable=True),
        sa.Column("ack_record", sa.Text, nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
    )
    op.create_index("ix_alerts_tenant_status", "alerts", ["tenant", "status", "opened_at"])
    op.create_index("ix_alerts_key", "alerts", ["tenant", "patient_ref", "bank_id", "rule", "opened_at"])
    op.create_index("uq_alerts_open", "alerts", ["tenant", "patient_ref", "bank_id", "rule"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("description", sa.String(200), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(40), sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.UniqueConstraint("endpoint_id", "alert_id", "event", name="uq_outbox_endpoint_alert_event"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_deliveries_outbox_id", "deliveries", ["outbox_id"])


    _backfill_domain_results()


# Frozen table shapes for the data step (never the application's tables in a migration).
_sessions = sa.table("sessions", sa.column("id", sa.String), sa.column("tenant", sa.String),
                     sa.column("patient_ref", sa.String), sa.column("status", sa.String),
                     sa.column("finished_at", sa.DateTime(timezone=True)), sa.column("result", sa.Text))
_domain_results = sa.table("domain_results", *(sa.column(c) for c in (
    "session_id", "bank_id", "tenant", "patient_ref", "domain", "direction", "status", "status_reason", "theta",
    "se", "t_score", "t_se", "band", "finished_at")))


def _backfill_domain_results() -> None:
    from cat_prom.evidence import SCORED, score_status

    conn = op.get_bind()
    rows = conn.execute(sa.select(_sessions).where(_sessions.c.status == "finished",
                                                   _sessions.c.result.isnot(None))).all()
    out = []
    for r in rows:
        result, changed = json.loads(r.result), False
        for d in result:
            status, reason = d.get("status"), d.get("status_reason")
            if status is None:  # stored before "not scored" existed: decide from the answers
                n_answered = int(d.get("n_answered") or 0)
                status, reason = score_status(n_answered + int(d.get("n_declined") or 0), n_answered)
                d["status"], d["status_reason"] = status, reason
                if status != SCORED:  # the stored result itself loses its evidence-free number
                    d.update(theta=None, se=None, t_score=None, t_se=None, band=None, flag="")
                changed = True
            scored = status == SCORED and d.get("t_score") is not None
            out.append({"session_id": r.id, "bank_id": d["bank_id"], "tenant": r.tenant, "patient_ref": r.patient_ref,
                        "domain": d.get("domain") or d["bank_id"], "direction": d.get("direction") or "higher_is_worse",
                        "status": status if scored else "not_scored", "status_reason": None if scored else reason,
                        "theta": d.get("theta") if scored else None, "se": d.get("se") if scored else None,
                        "t_score": d.get("t_score") if scored else None, "t_se": d.get("t_se") if scored else None,
                        "band": d.get("band") if scored else None, "finished_at": r.finished_at})
        if changed:
            conn.execute(_sessions.update().where(_sessions.c.id == r.id).values(
                result=json.dumps(result, separators=(",", ":"), ensure_ascii=False)))
    if out:
        conn.execute(_domain_results.insert(), out)


def downgrade() -> None:
    for t in ("deliveries", "outbox", "webhook_endpoints", "alerts", "goal_ratings", "goal_levels", "personal_goals",
              "baselines", "alert_rule_settings", "tenant_bank_settings", "acceptable_levels", "domain_results"):
        op.drop_table(t)

"""Tables of the clinical layer (issue 8): per-domain results, acceptable levels, settings,
personal goals with GAS ratings, baselines and alerts. The statements are in
:mod:`api.store.clinical`; the outbox and webhook tables in :mod:`api.store.outbox`.

A domain result keeps θ, SE and T of the sitting, not its posterior: the certainty an alert
states is computed from the live posterior when the sitting finishes and stored with the alert;
anything needing a posterior later rebuilds the sitting by replaying its response log (the
posterior is a cache, DESIGN.md).
"""
from __future__ import annotations

import sqlalchemy as sa

from .tables import metadata

_TS = sa.DateTime(timezone=True)

domain_results = sa.Table(
    "domain_results", metadata,
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("bank_id", sa.String(100), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("domain", sa.String(100), nullable=False),
    sa.Column("direction", sa.String(20), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),          # scored | not_scored
    sa.Column("status_reason", sa.String(40), nullable=True),    # why not scored
    sa.Column("theta", sa.Float, nullable=True),
    sa.Column("se", sa.Float, nullable=True),
    sa.Column("t_score", sa.Float, nullable=True),
    sa.Column("t_se", sa.Float, nullable=True),
    sa.Column("band", sa.String(100), nullable=True),
    sa.Column("finished_at", _TS, nullable=False),
    sa.Index("ix_domain_results_patient", "tenant", "patient_ref", "bank_id", "finished_at"),
    sa.Index("ix_domain_results_tenant_time", "tenant", "finished_at"),
)

acceptable_levels = sa.Table(  # history: one row per change, never updated; the current level is the newest
    "acceptable_levels", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("bank_id", sa.String(100), nullable=False),
    sa.Column("t_bound", sa.Float, nullable=False),
    sa.Column("band", sa.String(100), nullable=True),            # when given as a band
    sa.Column("agreed_by", sa.String(16), nullable=False),       # patient | clinician | both
    sa.Column("note", sa.String(1000), nullable=False, server_default=""),
    sa.Column("set_by", sa.String(40), nullable=False),          # API key id
    sa.Column("set_role", sa.String(20), nullable=False),
    sa.Column("set_at", _TS, nullable=False),
    sa.Index("ix_acceptable_levels_patient", "tenant", "patient_ref", "bank_id", "id"),
)

tenant_bank_settings = sa.Table(
    "tenant_bank_settings", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("bank_id", sa.String(100), primary_key=True),
    sa.Column("default_acceptable_t", sa.Float, nullable=True),
    sa.Column("mid_t", sa.Float, nullable=True),
    sa.Column("updated_by", sa.String(40), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)

alert_rule_settings = sa.Table(
    "alert_rule_settings", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("enabled_rules", sa.Text, nullable=False),         # JSON list of rule names
    sa.Column("certainty", sa.Float, nullable=False),
    sa.Column("abandoned_n", sa.Integer, nullable=False),
    sa.Column("gas_rho", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(40), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)

baselines = sa.Table(  # history of clinician-marked baselines; the current one is the newest
    "baselines", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("bank_id", sa.String(100), nullable=False),
    sa.Column("session_id", sa.String(40), nullable=False),
    sa.Column("set_by", sa.String(40), nullable=False),
    sa.Column("set_at", _TS, nullable=False),
    sa.Index("ix_baselines_patient", "tenant", "patient_ref", "bank_id", "id"),
)

personal_goals = sa.Table(
    "personal_goals", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(40), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("archived_at", _TS, nullable=True),
    sa.Index("ix_personal_goals_patient", "tenant", "patient_ref"),
)

goal_levels = sa.Table(  # the five GAS levels of a goal, -2..+2, described in words
    "goal_levels", metadata,
    sa.Column("goal_id", sa.String(40), sa.ForeignKey("personal_goals.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("text", sa.String(500), nullable=False),
)

goal_ratings = sa.Table(
    "goal_ratings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("goal_id", sa.String(40), sa.ForeignKey("personal_goals.id", ondelete="CASCADE"), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("rated_by", sa.String(16), nullable=False),        # patient | clinician
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("rated_on", sa.Date, nullable=False),
    sa.Column("note", sa.String(1000), nullable=False, server_default=""),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_goal_ratings_goal", "goal_id", "rated_on"),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("bank_id", sa.String(100), nullable=False),        # "*" for sitting-level rules (abandoned)
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),          # open | acknowledged
    sa.Column("certainty", sa.Float, nullable=True),
    sa.Column("threshold_t", sa.Float, nullable=True),
    sa.Column("t_score", sa.Float, nullable=True),
    sa.Column("t_se", sa.Float, nullable=True),
    sa.Column("details", sa.Text, nullable=False),              # JSON: the engine's rule record
    sa.Column("session_id", sa.String(40), nullable=True),      # the sitting that opened it
    sa.Column("last_session_id", sa.String(40), nullable=True),  # the newest sitting that confirmed it
    sa.Column("reopens", sa.String(40), nullable=True),          # the acknowledged alert this one re-opens
    sa.Column("opened_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Column("acknowledged_at", _TS, nullable=True),
    sa.Column("acknowledged_by", sa.String(40), nullable=True),
    sa.Column("ack_record", sa.Text, nullable=True),             # JSON: the rule record when acknowledged
    sa.Column("note", sa.String(1000), nullable=True),
    sa.Index("ix_alerts_tenant_status", "tenant", "status", "opened_at"),
    sa.Index("ix_alerts_key", "tenant", "patient_ref", "bank_id", "rule", "opened_at"),
    # at most one OPEN alert per patient, domain and rule (deduplication, enforced by the database)
    sa.Index("uq_alerts_open", "tenant", "patient_ref", "bank_id", "rule", unique=True,
             sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'")),
)

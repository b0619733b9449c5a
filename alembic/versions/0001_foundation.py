"""Foundation: tiers (seeded), users, subscriptions, usage events, audit log, error events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from domain.db.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BASE = ["demo_trading", "charts", "price_alerts", "signals_digest"]
_BASIC = [*_BASE, "live_trading", "analytics", "priority_support"]
_PRO = [*_BASIC, "auto_trading", "all_agents", "realtime_signals", "dashboards", "web_app"]
_ENTERPRISE = [*_PRO, "multi_account"]

# Frozen copy of the launch tier table; later changes come as new revisions.
TIERS = [
    {"code": "free", "rank": 0, "price_cents": 0, "price_stars": 0, "rate_per_minute": 30, "burst": 10,
     "quotas": {"alerts": 3, "ai_analysis": 3, "watchlist": 5}, "features": _BASE},
    {"code": "basic", "rank": 1, "price_cents": 999, "price_stars": 500, "rate_per_minute": 60, "burst": 15,
     "quotas": {"alerts": 20, "ai_analysis": 20, "watchlist": 15}, "features": _BASIC},
    {"code": "pro", "rank": 2, "price_cents": 2999, "price_stars": 1500, "rate_per_minute": 120, "burst": 30,
     "quotas": {"alerts": 100, "ai_analysis": 200, "watchlist": 50}, "features": _PRO},
    {"code": "enterprise", "rank": 3, "price_cents": 9999, "price_stars": 5000, "rate_per_minute": 300,
     "burst": 60, "quotas": {"alerts": 1000, "ai_analysis": 2000, "watchlist": 200}, "features": _ENTERPRISE},
]  # fmt: skip


def _bigint_pk() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    tiers = op.create_table(
        "tiers",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("price_stars", sa.Integer(), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("burst", sa.Integer(), nullable=False),
        sa.Column("quotas", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_tiers"),
        sa.UniqueConstraint("rank", name="uq_tiers_rank"),
    )
    op.bulk_insert(tiers, TIERS)
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_name", sa.String(128), nullable=False),
        sa.Column("username", sa.String(64)),
        sa.Column("language", sa.String(8)),
        sa.Column("tg_language", sa.String(16)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("tier_expires_at", UTCDateTime()),
        sa.Column("referral_code", sa.String(16), nullable=False),
        sa.Column("referred_by", sa.BigInteger()),
        sa.Column("notifications", sa.JSON(), nullable=False),
        sa.Column("is_blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(["tier"], ["tiers.code"], name="fk_users_tier_tiers"),
        sa.ForeignKeyConstraint(
            ["referred_by"], ["users.id"], name="fk_users_referred_by_users", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("referral_code", name="uq_users_referral_code"),
    )
    op.create_index("ix_users_username", "users", ["username"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rail", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(128)),
        sa.Column("current_period_end", UTCDateTime()),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_subscriptions_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tier"], ["tiers.code"], name="fk_subscriptions_tier_tiers"),
        sa.UniqueConstraint("external_id", name="uq_subscriptions_external_id"),
    )
    op.create_index("ix_subscriptions_user_id", "subscriptions", ["user_id"])
    op.create_table(
        "usage_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_events"),
    )
    op.create_index("ix_usage_events_user_at", "usage_events", ["user_id", "at"])
    op.create_table(
        "audit_log",
        sa.Column("id", _bigint_pk(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.BigInteger()),
        sa.Column("user_id", sa.BigInteger()),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("surface", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_user_at", "audit_log", ["user_id", "at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_table(
        "error_events",
        sa.Column("id", _bigint_pk(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(16), nullable=False),
        sa.Column("user_hash", sa.String(16)),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_error_events"),
        sa.UniqueConstraint("ref", name="uq_error_events_ref"),
    )
    op.create_index("ix_error_events_at", "error_events", ["at"])
    op.create_index("ix_error_events_code", "error_events", ["code"])


def downgrade() -> None:
    for table in ("error_events", "audit_log", "usage_events", "subscriptions", "users", "tiers"):
        op.drop_table(table)

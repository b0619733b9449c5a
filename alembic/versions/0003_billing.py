"""Billing: subscription lifecycle columns, payments, Stripe events, referral rewards, credits, meter reports.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from domain.db.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(64)))
        batch.add_column(sa.Column("grace_until", UTCDateTime()))
        batch.add_column(sa.Column("reminded_for", UTCDateTime()))
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("rail", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(16)),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(160), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("refunded_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_payments_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("external_id", name="uq_payments_external_id"),
    )
    op.create_index("ix_payments_user_created", "payments", ["user_id", "created_at"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_events"),
    )
    op.create_table(
        "referral_rewards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referee_id", sa.BigInteger(), nullable=False),
        sa.Column("referrer_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.String(160), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_referral_rewards"),
        sa.ForeignKeyConstraint(
            ["referee_id"], ["users.id"], name="fk_referral_rewards_referee_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["users.id"], name="fk_referral_rewards_referrer_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("referee_id", name="uq_referral_rewards_referee_id"),
    )
    op.create_index("ix_referral_rewards_referrer_id", "referral_rewards", ["referrer_id"])
    op.create_table(
        "billing_credits",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ai_analyses", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_billing_credits"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_billing_credits_user_id_users", ondelete="CASCADE"),
    )
    op.create_table(
        "meter_reports",
        sa.Column("usage_event_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("usage_event_id", name="pk_meter_reports"),
    )
    op.create_index("ix_meter_reports_user_id", "meter_reports", ["user_id"])


def downgrade() -> None:
    for table in ("meter_reports", "billing_credits", "referral_rewards", "stripe_events", "payments"):
        op.drop_table(table)
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("reminded_for")
        batch.drop_column("grace_until")
        batch.drop_column("customer_id")

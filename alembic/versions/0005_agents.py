"""Agent statistics, signals and signal subscriptions.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain.db.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_stats",
        sa.Column("agent", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("beta", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("last_update", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent", "symbol", "timeframe", name="pk_agent_stats"),
    )
    op.create_table(
        "agent_stats_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("beta", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_stats_history"),
    )
    op.create_index("ix_agent_stats_history_symbol_tf_time", "agent_stats_history", ["symbol", "timeframe", "time"])
    op.create_table(
        "agent_signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.Float(), nullable=False),
        sa.Column("atr", sa.Float(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("move", sa.Float()),
        sa.Column("move_atr", sa.Float()),
        sa.Column("resolved_at", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_agent_signals"),
        sa.UniqueConstraint("agent", "symbol", "timeframe", "time", name="uq_agent_signals_agent_symbol_tf_time"),
    )
    op.create_index("ix_agent_signals_symbol_tf_status", "agent_signals", ["symbol", "timeframe", "status"])
    op.create_index("ix_agent_signals_time", "agent_signals", ["time"])
    op.create_table(
        "agent_progress",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("last_bar", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "timeframe", name="pk_agent_progress"),
    )
    op.create_table(
        "signal_subscriptions",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "symbol", name="pk_signal_subscriptions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_signal_subscriptions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_signal_subscriptions_symbol", "signal_subscriptions", ["symbol"])
    op.create_table(
        "signal_digests",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("local_day", sa.String(10), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_signal_digests"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_signal_digests_user_id_users", ondelete="CASCADE"),
    )


def downgrade() -> None:
    tables = ("signal_digests", "signal_subscriptions", "agent_progress", "agent_signals", "agent_stats_history")
    for table in (*tables, "agent_stats"):
        op.drop_table(table)

"""Auto-trading: per-user settings and the claimed signals (one auto order per user, symbol, timeframe, bar).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain.db.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autotrade_settings",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("risk_pct", sa.Float(), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("live_confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_autotrade_settings"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_autotrade_settings_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "autotrade_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("bar_time", sa.BigInteger(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_autotrade_orders"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_autotrade_orders_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "symbol", "timeframe", "bar_time", name="uq_autotrade_orders_signal"),
    )


def downgrade() -> None:
    op.drop_table("autotrade_orders")
    op.drop_table("autotrade_settings")

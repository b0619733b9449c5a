"""Equity history for performance analytics.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "equity_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("login", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.Float(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_equity_snapshots"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_equity_snapshots_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "login", "ts", name="uq_equity_snapshots_user_login_ts"),
    )
    op.create_index("ix_equity_snapshots_ts", "equity_snapshots", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_equity_snapshots_ts", table_name="equity_snapshots")
    op.drop_table("equity_snapshots")

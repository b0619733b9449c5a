"""The MT5 terminal pool (one bridge endpoint leased per live account) and one user per live (login, server).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain.db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

LIVE = sa.text("kind = 'live'")


def upgrade() -> None:
    op.create_table(
        "mt5_terminals",
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("login", sa.BigInteger(), nullable=True),
        sa.Column("server", sa.String(64), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("leased_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_mt5_terminals_user_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("endpoint", name="pk_mt5_terminals"),
        sa.UniqueConstraint("login", "server", name="uq_mt5_terminals_login_server"),
    )
    # Two users linking one live account: the second insert fails, whatever process it runs in.
    # (Duplicates from before cannot exist in a real deployment: one terminal served everybody.)
    op.create_index(
        "uq_trading_accounts_live_login_server", "trading_accounts", ["login", "server"], unique=True,
        sqlite_where=LIVE, postgresql_where=LIVE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_trading_accounts_live_login_server", table_name="trading_accounts")
    op.drop_table("mt5_terminals")

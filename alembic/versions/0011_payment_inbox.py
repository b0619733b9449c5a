"""The payment inbox: each Stars successful or refunded payment stored before it is handled, retried until it is.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain.db.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("charge_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("total_amount", sa.Integer(), nullable=False),
        sa.Column("is_recurring", sa.Boolean(), nullable=False),
        sa.Column("is_first_recurring", sa.Boolean(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(64)),
        sa.Column("told_pending", sa.Boolean(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_payment_inbox"),
        sa.UniqueConstraint("kind", "charge_id", name="uq_payment_inbox_kind_charge"),
    )
    op.create_index("ix_payment_inbox_status_due", "payment_inbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("payment_inbox")

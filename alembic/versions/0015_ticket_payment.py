"""A support ticket may name the payment it is about (/paysupport): the payment's row id, the payer's own.

No foreign key: payment rows are never deleted (kept on erasure for the law), and SQLite's batch
mode would rebuild the table for a named constraint.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("payment_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("payment_id")

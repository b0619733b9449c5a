"""Unsettled orders by account: the reconciler's scan and the refusal of new orders while one is unknown.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_status_account", "orders", ["status", "account_kind", "login"])


def downgrade() -> None:
    op.drop_index("ix_orders_status_account", table_name="orders")

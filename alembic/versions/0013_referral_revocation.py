"""Referral rewards remember their revocation: a refund (or chargeback) of the payment that earned one
takes it back, once, and the row stays as the record that the referee was rewarded.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain.db.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referral_rewards") as batch:
        batch.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referral_rewards") as batch:
        batch.drop_column("revoked_at")

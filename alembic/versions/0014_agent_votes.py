"""Every agent's vote and the consensus at each processed bar, with the weight it carried (the Mini App's
consensus history: the agent runner stores it beside the signals).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_votes",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("agent", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "timeframe", "time", "agent", name="pk_agent_votes"),
    )


def downgrade() -> None:
    op.drop_table("agent_votes")

"""Demo accounts of the simulated terminal in rows every process shares (replaces sim_snapshots).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from domain.db.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    accounts = op.create_table(
        "sim_accounts",
        sa.Column("login", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("deals", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("login", name="pk_sim_accounts"),
    )
    deals = op.create_table(
        "sim_deals",
        sa.Column("login", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["login"], ["sim_accounts.login"], name="fk_sim_deals_login_sim_accounts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("login", "seq", name="pk_sim_deals"),
    )
    sequences = op.create_table(
        "sim_sequences",
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sim_sequences"),
    )
    _move_snapshot(accounts, deals, sequences)
    op.drop_table("sim_snapshots")


def _move_snapshot(accounts: sa.Table, deals: sa.Table, sequences: sa.Table) -> None:
    """Carry the accounts of the old one-row snapshot over (passwords become verifiers).

    A downgrade does not carry them back."""
    conn = op.get_bind()
    old = sa.table("sim_snapshots", sa.column("name", sa.String), sa.column("data", sa.JSON))
    data: Any = conn.execute(sa.select(old.c.data).where(old.c.name == "demo-terminal")).scalar()
    if not data or data.get("version") != 1:
        return
    from domain.market.sim import _verifier

    now = datetime.now(UTC)
    for a in data["accounts"]:
        password = a["password"]
        state = {
            "password": None if password is None else _verifier(password, secrets.token_hex(8)),
            "name": a["name"],
            "currency": a["currency"],
            "leverage": a["leverage"],
            "balance": a["balance"],
            "positions": a["positions"],
            "done_g": data.get("done_g"),
        }
        op.bulk_insert(accounts, [{"login": a["login"], "version": 1, "state": state, "deals": len(a["deals"]),
                                   "updated_at": now}])  # fmt: skip
        if a["deals"]:
            op.bulk_insert(deals, [{"login": a["login"], "seq": i, "data": d} for i, d in enumerate(a["deals"])])
    op.bulk_insert(sequences, [
        {"name": "login", "value": int(data["next_login"])},
        {"name": "ticket", "value": max(int(data["next_order"]), int(data["next_deal"]))},
    ])  # fmt: skip


def downgrade() -> None:
    op.create_table(
        "sim_snapshots",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sim_snapshots"),
    )
    op.drop_table("sim_sequences")
    op.drop_table("sim_deals")
    op.drop_table("sim_accounts")

"""The ledger: usage events and credit transactions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KINDS = ("grant", "rollover", "refund", "bonus", "adjustment")
TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("pod_uid", sa.Text(), nullable=False),
        sa.Column("slot", TIMESTAMPTZ, nullable=False),
        sa.Column("start", TIMESTAMPTZ, nullable=False),
        sa.Column("end", TIMESTAMPTZ, nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("owner_kind", sa.Text(), nullable=False),
        sa.Column("owner_name", sa.Text(), nullable=False),
        sa.Column("owner_uid", sa.Text(), nullable=False),
        sa.Column("pod_name", sa.Text(), nullable=False),
        sa.Column("gpu_type", sa.Text(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("credit_seconds", sa.Numeric(), nullable=False),
        sa.Column("budget", sa.Text(), nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("pod_uid", "slot", name="usage_events_pkey"),
    )
    op.create_index("usage_events_budget_slot", "usage_events", ["budget", "slot"])
    op.create_index("usage_events_namespace_slot", "usage_events", ["namespace", "slot"])
    op.create_index("usage_events_owner_uid", "usage_events", ["owner_uid"])

    op.create_table(
        "credit_transactions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("budget", sa.Text(), nullable=False),
        sa.Column("period_start", TIMESTAMPTZ, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False, server_default=""),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})",
                           name="credit_transactions_kind"),
        # Its index also serves lookups by (budget, period_start): no second index for those.
        sa.UniqueConstraint("budget", "period_start", "kind", "key",
                            name="credit_transactions_once"),
    )


def downgrade() -> None:
    op.drop_table("credit_transactions")
    op.drop_table("usage_events")

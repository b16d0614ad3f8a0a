"""The outbox of CreditBudget webhooks: one row per notification owed, until delivered.

A row is owed once per (budget, period start, threshold, target); ``target`` is a hash of
where the webhook goes (never its URL). ``next_attempt_at`` is when the row is due (a claim
moves it to the end of its lease); NULL with ``delivered_at`` NULL means given up.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EVENTS = ("BudgetWarning", "BudgetExhausted")
TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "budget_notifications",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("budget", sa.Text(), nullable=False),
        sa.Column("period_start", TIMESTAMPTZ, nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TIMESTAMPTZ, nullable=True),
        sa.Column("delivered_at", TIMESTAMPTZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"event IN ({', '.join(repr(e) for e in EVENTS)})",
                           name="budget_notifications_event"),
        # Its index also serves the per-budget lookups of the status.
        sa.UniqueConstraint("budget", "period_start", "threshold", "target",
                            name="budget_notifications_once"),
    )
    # What a claim scans: rows still owed, by when they are due.
    op.create_index("budget_notifications_due", "budget_notifications", ["next_attempt_at"],
                    postgresql_where=sa.text("delivered_at IS NULL"))


def downgrade() -> None:
    op.drop_table("budget_notifications")

"""Requests served per serving pod, for a ModelDeployment's cost per 1,000 requests.

A serving replica's container counts the requests it answered since it started
(``/v1/stats``); the meter records the highest count it read per pod and container
incarnation (the container's restart count: a restarted container counts from zero again), so
the requests of a deployment are the sum over its pods' incarnations, live and gone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "request_counts",
        sa.Column("pod_uid", sa.Text(), primary_key=True),
        sa.Column("incarnation", sa.Integer(), primary_key=True),
        sa.Column("owner_uid", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("owner_name", sa.Text(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", TIMESTAMPTZ, nullable=False),
    )
    op.create_index("request_counts_owner", "request_counts", ["owner_uid"])


def downgrade() -> None:
    op.drop_index("request_counts_owner", table_name="request_counts")
    op.drop_table("request_counts")

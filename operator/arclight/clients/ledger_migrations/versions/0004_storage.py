"""Artifact storage in usage events: the claim's requested bytes of each slice.

A claim's slices are usage events keyed by the claim's uid (owner kind
``PersistentVolumeClaim``) with no CPU, memory or GPU; pods' rows keep 0.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-15
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("storage_bytes", sa.BigInteger(), nullable=False,
                                            server_default="0"))


def downgrade() -> None:
    op.drop_column("usage_events", "storage_bytes")

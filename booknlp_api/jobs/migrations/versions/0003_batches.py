"""Batches: many books sent in one call (``POST /v1/batches``), each an ordinary job.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("batches", sa.Column("id", sa.Text, primary_key=True), sa.Column("owner", sa.Text),
                    sa.Column("idempotency_key", sa.Text, unique=True),
                    sa.Column("request_hash", sa.Text, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("batch_jobs", sa.Column("batch_id", sa.Text, primary_key=True),
                    sa.Column("position", sa.Integer, primary_key=True),
                    sa.Column("name", sa.Text, nullable=False), sa.Column("job_id", sa.Text, nullable=False))


def downgrade() -> None:
    op.drop_table("batch_jobs")
    op.drop_table("batches")

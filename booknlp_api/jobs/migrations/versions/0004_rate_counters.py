"""Per-key rate limits counted in the job database, shared by every API process on it (``jobs.rate_counters``).

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("rate_counters", sa.Column("key", sa.Text, primary_key=True),
                    sa.Column("count", sa.BigInteger, nullable=False),
                    sa.Column("expires_at", sa.Float, nullable=False))
    op.create_index("rate_counters_expires", "rate_counters", ["expires_at"])
    op.create_table("rate_entries", sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("key", sa.Text, nullable=False), sa.Column("at", sa.Float, nullable=False),
                    sa.Column("amount", sa.BigInteger, nullable=False),
                    sa.Column("expires_at", sa.Float, nullable=False))
    op.create_index("rate_entries_key_at", "rate_entries", ["key", "at", "amount"])  # covers the window sums
    op.create_index("rate_entries_expires", "rate_entries", ["expires_at"])


def downgrade() -> None:
    op.drop_table("rate_entries")
    op.drop_table("rate_counters")

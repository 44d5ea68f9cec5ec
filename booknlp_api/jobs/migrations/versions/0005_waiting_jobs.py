"""Batches larger than a key's jobs at once: books wait (status ``waiting``) with the limit they are released within.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("max_active", sa.Integer))
    # Releasing a key's waiting books counts its jobs queued or running and takes its oldest waiting ones.
    op.create_index("jobs_owner", "jobs", ["owner", "status", "seq"])


def downgrade() -> None:
    op.drop_index("jobs_owner", "jobs")
    op.drop_column("jobs", "max_active")

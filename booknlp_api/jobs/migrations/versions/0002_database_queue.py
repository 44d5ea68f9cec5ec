"""The database is the queue (huey is gone): a priority for jobs put back after a crash; blobs for texts and results.

Jobs still ``queued`` in a database from before are simply claimed in their order: the old huey
queue file (``queue.sqlite3``) is no longer read.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
    op.create_index("jobs_queue", "jobs", ["status", "priority", "seq"])
    op.create_table("blobs", sa.Column("name", sa.Text, primary_key=True),
                    sa.Column("data", sa.LargeBinary, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        # Blobs are compressed by us (gzip, zip): no second compression, and ranges read straight off the page.
        op.execute("alter table blobs alter column data set storage external")


def downgrade() -> None:
    op.drop_table("blobs")
    op.drop_index("jobs_queue", "jobs")
    op.drop_column("jobs", "priority")

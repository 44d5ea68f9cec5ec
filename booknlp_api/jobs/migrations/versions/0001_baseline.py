"""The schema as released before migrations: jobs, workers, api_keys.

A database from before migrations already has these tables, perhaps without the columns added in
later releases (worker states, precision, owner); they are added here, so every such database
continues from the same point.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_LATER_COLUMNS = {
    "workers": [sa.Column("state", sa.Text, nullable=False, server_default="loading"),
                sa.Column("error", sa.Text), sa.Column("device", sa.Text), sa.Column("models", sa.Text)],
    "jobs": [sa.Column("precision", sa.Text, nullable=False, server_default="exact"), sa.Column("owner", sa.Text)],
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "jobs" not in tables:
        _create_jobs()
    if "workers" not in tables:
        op.create_table("workers", sa.Column("id", sa.Text, primary_key=True),
                        sa.Column("host", sa.Text, nullable=False), sa.Column("pid", sa.Integer, nullable=False),
                        sa.Column("started_at", sa.Float, nullable=False),
                        sa.Column("heartbeat_at", sa.Float, nullable=False))
    if "api_keys" not in tables:
        op.create_table("api_keys", sa.Column("name", sa.Text, primary_key=True),
                        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
                        sa.Column("admin", sa.Integer, nullable=False, server_default="0"),
                        sa.Column("created_at", sa.Float, nullable=False), sa.Column("revoked_at", sa.Float),
                        sa.Column("rate_limit", sa.Text), sa.Column("max_active_jobs", sa.Integer),
                        sa.Column("max_chars_per_day", sa.Integer))
    for table, columns in _LATER_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)} if table in tables else set()
        for column in columns:
            if column.name not in present:
                op.add_column(table, column)
    indexes = {index["name"] for index in inspector.get_indexes("jobs")} if "jobs" in tables else set()
    for name, columns in (("jobs_status_seq", ["status", "seq"]), ("jobs_cache_key", ["cache_key", "status"]),
                          ("jobs_owner_seq", ["owner", "seq"])):
        if name not in indexes:
            op.create_index(name, "jobs", columns)


def _create_jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("book_id", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("pipeline", sa.Text, nullable=False),
        sa.Column("sections", sa.Text),
        sa.Column("text_chars", sa.Integer, nullable=False),
        sa.Column("text_offset", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_key", sa.Text, nullable=False),
        sa.Column("cached_from", sa.Text),
        sa.Column("idempotency_key", sa.Text, unique=True),
        sa.Column("request_hash", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("expires_at", sa.Float),
        sa.Column("expired", sa.Integer, nullable=False, server_default="0"),
        sa.Column("progress", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("analysis", sa.Text),
        sa.Column("result_dir", sa.Text),
        sa.Column("worker_id", sa.Text),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    raise NotImplementedError("the first schema has nothing to go back to")

"""Where job records live: the embedded SQLite file in the data folder (default) or a PostgreSQL server.

``BOOKNLP_DATABASE_URL`` unset means ``<data_dir>/jobs.sqlite3``; ``postgresql://...`` puts records,
the queue, keys, submitted texts and results in that server, so processes on any machine share them
through the URL alone. Opening a database brings its schema to the newest migration (alembic,
``jobs/migrations``), one process at a time: PostgreSQL holds an advisory lock, SQLite a write lock.

SQLite runs every transaction that may write as ``BEGIN IMMEDIATE``: one that reads and then writes
(a claim) never fails half-way on a lock upgrade, and a busy database is waited for (30 s). Reads
alone (``Database.reading``) take no lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from booknlp_api.jobs.errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 7_311_311
"""PostgreSQL advisory lock id held while migrating: processes starting together migrate one by one."""
SQLITE_FILE = "jobs.sqlite3"
READ_ONLY = "booknlp_read_only"
"""Execution option of a connection that only reads (``Database.reading``): SQLite takes no write lock for it."""


def database_url(database_url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL for the configured database: psycopg 3 for PostgreSQL, else the data folder's SQLite."""
    if not database_url:
        return f"sqlite:///{data_dir / SQLITE_FILE}"
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


class Database:
    """One engine (a pool of connections) on the job database, its schema migrated to the newest version."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        if self.is_postgres:
            # pre_ping: connections from before a server restart are replaced, not handed out broken.
            self.engine = create_engine(url, poolclass=UnavailableWhenExhausted, pool_pre_ping=True, pool_size=5,
                                        max_overflow=10, pool_timeout=10, connect_args={"connect_timeout": 5})
        else:
            if parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
        event.listen(self.engine, "handle_error", _unavailable)
        migrate(self.engine)

    @classmethod
    def open(cls, target: Database | Path | str) -> Database:
        """A database from a URL or a SQLite file's path (tests, tools), or the one given."""
        if isinstance(target, Database):
            return target
        return cls(f"sqlite:///{target}" if isinstance(target, Path) else target)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A transaction that only reads."""
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield connection

    def close(self) -> None:
        self.engine.dispose()


class UnavailableWhenExhausted(QueuePool):
    """A pool whose every connection stays busy past its timeout answers like a database that is down (503).

    The checkout happens before any statement, so ``handle_error`` never sees SQLAlchemy's pool
    ``TimeoutError``: without this, a request arriving while the pool is exhausted would get a 500.
    """

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return super()._do_get()
        except PoolTimeout:
            raise DatabaseUnavailable() from None


# SQLAlchemy names a pool's logger after its class: ours would land under booknlp_api (INFO) and log every
# dispose, where QueuePool's own logger sits under "sqlalchemy" (WARNING). Keep it as quiet as QueuePool's.
logging.getLogger(f"{UnavailableWhenExhausted.__module__}.{UnavailableWhenExhausted.__qualname__}").setLevel(
    logging.WARNING)


def _unavailable(context: ExceptionContext) -> Exception | None:
    """A lost or refused connection (or a database locked past its timeout) becomes one error of ours."""
    error = context.sqlalchemy_exception
    if context.is_pre_ping:
        return None  # the pool handles a failed ping itself: it opens a new connection
    if context.is_disconnect or isinstance(error, OperationalError | InterfaceError):
        return DatabaseUnavailable()
    return None


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, poolclass=UnavailableWhenExhausted,
                           connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below starts every transaction
        cursor = dbapi_connection.cursor()
        cursor.execute("pragma journal_mode=wal")
        cursor.execute("pragma synchronous=normal")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # A read alone needs no write lock: in WAL mode it sees a snapshot and never waits for a writer.
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("begin" if reading else "begin immediate")

    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest migration, in one transaction (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("select pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

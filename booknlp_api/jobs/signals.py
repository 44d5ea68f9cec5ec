"""Wake-ups between processes: the data folder's sockets (``jobs.wake``), and on PostgreSQL also LISTEN/NOTIFY.

Sockets reach the processes of one machine; NOTIFY reaches every process connected to the same
PostgreSQL server, wherever it runs. Either is best effort: workers still poll the queue every 2 s
and waiting requests their job every 1 s, so a wake-up lost (the database restarting, say) costs
only latency. Once a channel is LISTENed on (at first, and again after the connection comes back),
its subscribers are rung once, since a notification sent before may have been missed: a worker
started just before a job was queued looks at the queue then instead of at its next poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.wake import Doorbell, notify

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "booknlp_"
LISTEN_SECONDS = 1.0
"""How long the listener waits for a notification before checking for new channels and for close()."""
RECONNECT_SECONDS = 1.0


class Signals:
    def __init__(self, data_dir: Path, database: Database) -> None:
        self.data_dir = data_dir
        self.database = database
        self._listener = _Listener(database.url) if database.is_postgres else None

    def notify(self, topic: str) -> None:
        """Wake every listener of ``topic``: on this machine's data folder, and through the database."""
        notify(self.data_dir, topic)
        if self.database.is_postgres:
            try:
                with self.database.engine.begin() as conn:
                    conn.execute(text("select pg_notify(:channel, '')"), {"channel": CHANNEL_PREFIX + topic})
            except SQLAlchemyError as exc:  # the database is away: listeners will poll
                log.debug("no NOTIFY %s: %s", topic, exc)

    def doorbell(self, topic: str) -> Doorbell:
        """A doorbell rung by ``notify(topic)`` from any process that shares the data folder or the database."""
        bell = Doorbell(self.data_dir, topic)
        if self._listener is not None:
            self._listener.subscribe(CHANNEL_PREFIX + topic, bell.ring)
        return bell

    def listening(self, timeout: float) -> bool:
        """Whether every channel subscribed to is LISTENed on, waiting up to ``timeout`` s (SQLite: at once)."""
        return self._listener is None or self._listener.listening.wait(timeout)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()


class _Listener:
    """One thread with its own connection, LISTENing on the channels subscribed to; started on first use."""

    def __init__(self, url: str) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._subscribers: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while the connection LISTENs on every channel subscribed to."""

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        with self._lock:
            if channel not in self._subscribers:
                self.listening.clear()
            self._subscribers.setdefault(channel, []).append(callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="job-listen", daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(LISTEN_SECONDS + 1)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    self._listen(conn)
            except psycopg.Error as exc:
                self.listening.clear()
                log.debug("LISTEN connection lost (%s); reconnecting", exc)
                self._closed.wait(RECONNECT_SECONDS)

    def _listen(self, conn: psycopg.Connection) -> None:
        listening: set[str] = set()
        while not self._closed.is_set():
            with self._lock:
                channels = set(self._subscribers) - listening
            for channel in channels:
                conn.execute(f'listen "{channel}"')  # channel names are ours (CHANNEL_PREFIX + topic)
                listening.add(channel)
                # Only now are its notifications received: whatever was notified before, look once.
                self._ring(channel)
            with self._lock:
                if listening >= set(self._subscribers):
                    self.listening.set()
            for note in conn.notifies(timeout=LISTEN_SECONDS, stop_after=1):
                self._ring(note.channel)

    def _ring(self, channel: str) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get(channel, ()))
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

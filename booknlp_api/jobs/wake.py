"""Wake-ups between the processes that share a data folder: one UNIX datagram socket per listener.

Workers sleep until a job is queued, and the API's ``/v1/analyze`` waits until its job ends. Both
used to poll the store (every 0.5 s and up to 0.2 s): on a one-second analysis that was a third of
the latency. Now a listener binds a socket ``<data_dir>/wake/<topic>.<random>.sock`` and
``notify(topic)`` sends one byte to every socket of that topic, so any process on the same data
folder (the API, the workers it starts, ``booknlp-api worker`` processes run by hand) wakes the
others at once. Delivery is best effort and the store stays the truth: listeners keep a slow poll,
which also covers a data folder on a filesystem without sockets, or other machines sharing it.

Topics: ``queued`` (a job was queued: idle workers look at the queue) and ``finished`` (a job
ended: waiting requests look at the store).

A socket left by a process that died refuses datagrams; the next notifier removes it. A full socket
buffer means the listener already has a wake-up waiting, so that datagram is simply dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import select
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

QUEUED = "queued"
FINISHED = "finished"
_SUFFIX = ".sock"
_MAX_SOCKET_PATH = 103
"""Bytes a UNIX socket path may have: 107 on Linux, 103 on macOS; the smaller, for both."""
LISTEN_SECONDS = 5.0
"""How long the finish watch's thread sleeps between checks that it should stop (it is rung to stop)."""
_NAME_BYTES = len(f"/{FINISHED}.{'0' * 12}{_SUFFIX}")


def wake_dir(data_dir: Path) -> Path:
    """Where the data folder's sockets live: inside it, or under the temp folder when that path is too long.

    Socket paths are limited to ~100 bytes; every process derives the same folder from the data
    folder's resolved path, so they still find each other.
    """
    folder = data_dir.resolve() / "wake"
    if len(os.fsencode(folder)) + _NAME_BYTES > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / f"booknlp-wake-{digest}"
    return folder


def notify(data_dir: Path, topic: str) -> int:
    """Wake every listener of ``topic`` on this data folder; how many sockets took the datagram."""
    folder = wake_dir(data_dir)
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(f"{topic}.") and e.name.endswith(_SUFFIX)]
    except OSError:
        return 0  # no listener has ever started here
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for entry in entries:
            try:
                sender.sendto(b"!", entry.path)
                sent += 1
            except BlockingIOError:
                sent += 1  # its buffer is full: a wake-up is already waiting there
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody is bound to it any more: a listener that died without closing.
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            except OSError as exc:
                log.debug("wake-up to %s not sent: %s", entry.path, exc)
    return sent


class Doorbell:
    """What an idle loop sleeps on: rung in this process (``ring``), or from any process by ``notify``.

    Falls back to a plain in-process event when no socket can be bound; waits then simply last
    until their timeout (the caller's poll).
    """

    def __init__(self, data_dir: Path, topic: str) -> None:
        self._event = threading.Event()
        self._socket: socket.socket | None = None
        self.path: Path | None = None
        folder = wake_dir(data_dir)
        path = folder / f"{topic}.{uuid.uuid4().hex[:12]}{_SUFFIX}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
        except OSError as exc:
            log.warning("no wake-up socket in %s (%s): polling instead", folder, exc)
            return
        sock.setblocking(False)
        self._socket, self.path = sock, path

    def ring(self) -> None:
        self._event.set()
        if self._socket is not None and self.path is not None:
            with contextlib.suppress(OSError):
                self._socket.sendto(b"!", str(self.path))  # interrupts a wait() blocked on the socket

    def clear(self) -> None:
        """Forget wake-ups so far: the caller is about to look at the state they announced."""
        self._event.clear()
        self._drain()

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or notified (True), or ``timeout`` seconds (False); clears what woke it."""
        sock = self._socket
        if sock is None or self._event.is_set():
            woke = self._event.wait(timeout)
        else:
            try:
                woke = bool(select.select([sock], [], [], timeout)[0])
            except (OSError, ValueError):  # closed by another thread
                woke = self._event.wait(timeout)
        self.clear()
        return woke or self._event.is_set()

    def close(self) -> None:
        sock, path = self._socket, self.path
        self._socket = None
        self._event.set()
        if sock is not None:
            sock.close()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def _drain(self) -> None:
        sock = self._socket
        if sock is None:
            return
        try:
            while sock.recv(64):
                pass
        except OSError:  # BlockingIOError once empty; anything else: closed meanwhile
            pass


class FinishWatch:
    """Lets coroutines sleep until some job of the data folder ends (``notify(FINISHED)`` from any process).

    One thread per process listens on a ``finished`` socket and sets the asyncio events of every
    coroutine waiting at that moment, on its own loop; a waiter then reads the store to see whether
    it was its job. Started on first use.
    """

    def __init__(self, data_dir: Path, doorbell: Callable[[str], Doorbell] | None = None) -> None:
        self.data_dir = data_dir
        self._doorbell = doorbell or (lambda topic: Doorbell(data_dir, topic))
        """Makes the bell the thread sleeps on (``jobs.signals``: rung through the database too)."""
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self._bell: Doorbell | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextlib.contextmanager
    def waiter(self) -> Iterator[asyncio.Event]:
        """An event set whenever a job ends from now on (register before reading the store: none is missed)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._start()
            self._waiters.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._bell = self._doorbell(FINISHED)
            self._thread = threading.Thread(target=self._listen, args=(self._bell,), name="job-finish-watch",
                                            daemon=True)
            self._thread.start()

    def _listen(self, bell: Doorbell) -> None:
        while not self._closed:
            if bell.wait(LISTEN_SECONDS) and not self._closed:
                with self._lock:
                    waiters = list(self._waiters)
                for loop, event in waiters:
                    with contextlib.suppress(RuntimeError):  # that loop has closed
                        loop.call_soon_threadsafe(event.set)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            bell, thread = self._bell, self._thread
        if bell is not None and thread is not None:
            bell.ring()
            thread.join(5)
            bell.close()

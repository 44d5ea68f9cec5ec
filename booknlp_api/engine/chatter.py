"""Upstream prints freely to stdout while it works; capture that per thread, not per process.

``contextlib.redirect_stdout`` swaps ``sys.stdout`` for every thread at once, so anything another
thread printed during a stage would vanish into the stage's buffer. Instead ``sys.stdout`` is
wrapped once by a router that sends a capturing thread's writes to its own buffer and every other
thread's writes where they always went.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

_local = threading.local()
_install_lock = threading.Lock()


class _RoutedStdout(io.TextIOBase):
    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(_local, "buffer", None)
        return (buffer or self.target).write(text)

    def flush(self) -> None:
        if getattr(_local, "buffer", None) is None:
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@contextlib.contextmanager
def captured_stdout() -> Iterator[io.StringIO]:
    """Within this block, what this thread prints goes to the yielded buffer."""
    with _install_lock:
        if not isinstance(sys.stdout, _RoutedStdout):
            sys.stdout = _RoutedStdout(sys.stdout)
    previous = getattr(_local, "buffer", None)
    _local.buffer = io.StringIO()
    try:
        yield _local.buffer
    finally:
        _local.buffer = previous

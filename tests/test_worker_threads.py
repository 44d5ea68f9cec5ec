"""A worker process's main thread runs no torch work: its models load on a thread of their own.

Once a process's main thread has run a parallel torch operation, the parallel operations other threads start
are several times slower (OpenMP), and a worker runs every analysis on its job thread (docs/PERFORMANCE.md,
"Warm analysis latency").
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from booknlp_api.jobs.process import load_off_main_thread


class _Engine:
    def __init__(self, error: Exception | None = None) -> None:
        self.threads: list[threading.Thread] = []
        self.error = error

    def load(self) -> None:
        self.threads.append(threading.current_thread())
        if self.error is not None:
            raise self.error


def test_the_models_load_off_the_main_thread() -> None:
    engine: Any = _Engine()
    load_off_main_thread(engine)
    assert len(engine.threads) == 1
    assert engine.threads[0] is not threading.main_thread()


def test_a_failed_load_is_raised_to_the_caller() -> None:
    engine: Any = _Engine(RuntimeError("checkpoint unreadable"))
    with pytest.raises(RuntimeError, match="checkpoint unreadable"):
        load_off_main_thread(engine)

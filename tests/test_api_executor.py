"""The start-up warm-up, with plain functions in place of the engine."""

from __future__ import annotations

import threading

import pytest

from booknlp_api.api.runtime import Warmup


def test_warmup_reports_ready_after_loading() -> None:
    loaded = threading.Event()
    warmup = Warmup(loaded.set)
    assert warmup.state == "loading"
    warmup.start()
    assert warmup.wait(timeout=5) == "ready"
    assert loaded.is_set() and warmup.error is None


def test_warmup_remembers_why_loading_failed() -> None:
    def load() -> None:
        raise FileNotFoundError("no model folder")

    warmup = Warmup(load)
    warmup.start()
    assert warmup.wait(timeout=5) == "failed"
    assert warmup.error == "FileNotFoundError: no model folder"


def test_warmup_disabled_is_ready_without_loading() -> None:
    warmup = Warmup(lambda: pytest.fail("must not load"), enabled=False)
    warmup.start()
    assert warmup.state == "ready"

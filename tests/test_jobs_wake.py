"""Wake-ups across processes on one data folder: workers start queued jobs and waiting requests answer
without waiting for a poll (the polls are made hours long here, so only a wake-up can do it).

The doorbell tests are about the data folder's local sockets and run on SQLite's setup only; the job
test runs on both databases, on PostgreSQL with a data folder per side so that only LISTEN/NOTIFY
(``jobs.signals``) can wake them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import booknlp_api.jobs.service as job_service
import booknlp_api.jobs.worker as job_worker
from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.records import Submission
from booknlp_api.jobs.service import JobService
from booknlp_api.jobs.wake import FINISHED, QUEUED, Doorbell, FinishWatch, notify, wake_dir
from tests.conftest import database_setting

NO_POLL = 3600.0


def _notify_from_another_process(data_dir: Path, topic: str) -> int:
    code = ("from pathlib import Path; from booknlp_api.jobs.wake import notify; "
            f"print(notify(Path({str(data_dir)!r}), {topic!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return int(done.stdout)


def test_a_notify_from_another_process_wakes_every_listener_of_the_topic_only(tmp_path: Path) -> None:
    first, second, other = Doorbell(tmp_path, QUEUED), Doorbell(tmp_path, QUEUED), Doorbell(tmp_path, FINISHED)
    try:
        assert not first.wait(0.01)
        assert _notify_from_another_process(tmp_path, QUEUED) == 2
        assert first.wait(30) and second.wait(30)
        assert not other.wait(0.01)
        assert not first.wait(0.01)  # the wake-up was consumed
    finally:
        for bell in (first, second, other):
            bell.close()
    assert list(wake_dir(tmp_path).iterdir()) == []


def test_ring_wakes_a_wait_in_this_process_and_clear_forgets_it(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path, QUEUED)
    bell.ring()
    bell.clear()
    assert not bell.wait(0.01)
    bell.ring()
    assert bell.wait(30)
    bell.close()


def test_a_socket_left_by_a_dead_listener_is_removed_by_the_next_notify(tmp_path: Path) -> None:
    folder = wake_dir(tmp_path)
    folder.mkdir(parents=True)
    stale = folder / f"{QUEUED}.deadbeef0000.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(stale))  # closed without unlinking, as when its process is killed
    assert stale.exists()
    assert notify(tmp_path, QUEUED) == 0
    assert not stale.exists()


def test_a_data_folder_too_long_for_a_socket_path_gets_its_sockets_under_the_temp_folder(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    folder = wake_dir(deep)
    assert not folder.is_relative_to(deep) and folder == wake_dir(deep / ".." / deep.name)
    bell = Doorbell(deep, QUEUED)
    try:
        assert bell.path is not None and len(os.fsencode(bell.path)) < 104
        assert _notify_from_another_process(deep, QUEUED) == 1
        assert bell.wait(30)
    finally:
        bell.close()


def test_finish_watch_wakes_the_coroutines_waiting_on_it(tmp_path: Path) -> None:
    watch = FinishWatch(tmp_path)

    async def wait_for_a_finish() -> bool:
        with watch.waiter() as finished:
            await asyncio.to_thread(_notify_from_another_process, tmp_path, FINISHED)
            await asyncio.wait_for(finished.wait(), 30)
            return finished.is_set()

    try:
        assert asyncio.run(wait_for_a_finish())
    finally:
        watch.close()


def test_a_job_submitted_by_another_process_starts_and_its_waiter_answers_without_polling(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    monkeypatch.setattr(job_worker, "POLL_SECONDS", NO_POLL)
    monkeypatch.setattr(job_service, "WAIT_POLL_SECONDS", NO_POLL)
    database = database_setting(database_url)
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path, database_url=database)
    worker_side = JobService(settings, tiny_service)
    worker = worker_side.new_worker()
    asleep = threading.Event()
    real_wait = worker._wake.wait

    def wait(timeout: float) -> bool:
        asleep.set()
        return real_wait(timeout)

    monkeypatch.setattr(worker._wake, "wait", wait)
    worker.start()
    # No worker: like the API process, it only submits and waits; on PostgreSQL from a data folder of its own.
    api_side = JobService(settings if database is None else settings.model_copy(update={"data_dir": tmp_path / "api"}),
                          tiny_service)
    try:
        assert api_side.worker is None
        assert asleep.wait(60)  # the idle worker sleeps on its (hour-long) poll before the job arrives
        assert worker_side.signals.listening(60)  # and hears the database's notifications (PostgreSQL)
        job, _ = api_side.submit(Submission(text="Marley was dead.", pipeline=("supersense",)))
        finished = asyncio.run(api_side.wait(job.id, timeout=120))
        assert finished.status == "succeeded"
    finally:
        worker_side.stop()
        api_side.stop()

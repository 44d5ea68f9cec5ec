"""Nothing is lost: real `booknlp-api serve` processes killed with real signals, then restarted.

The job store is read directly between runs, while no server is up, to see what a crash left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.corpus import text_path
from booknlp_api.jobs.queue import HueyJobQueue
from booknlp_api.jobs.store import JobStore
from tests.conftest import AUTH, keys_file

NOVEL = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8")
CLI = Path(sys.executable).with_name("booknlp-api")


class Server:
    """One `booknlp-api serve` process on a data folder; restartable on the same folder."""

    def __init__(self, models_dir: Path, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "BOOKNLP_MODELS_DIR": str(models_dir), "BOOKNLP_MODEL": "tiny",
                    "BOOKNLP_DATA_DIR": str(data_dir), "BOOKNLP_TORCH_THREADS": "1", "BOOKNLP_LOG_LEVEL": "info",
                    "BOOKNLP_SHUTDOWN_GRACE_SECONDS": "1", "BOOKNLP_API_KEYS_FILE": str(keys_file(data_dir.parent))}
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(timeout=60, headers=AUTH)

    def start(self) -> None:
        port = _free_port()
        self.client.base_url = httpx.URL(f"http://127.0.0.1:{port}")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.tail()}"
            try:
                if self.client.get("/v1/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"not ready in time:\n{self.tail()}")

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def submit(self, text: str, **options: Any) -> str:
        response = self.client.post("/v1/jobs", json={"text": text, "cache": False, **options})
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.get(f"/v1/jobs/{job_id}").json()
        return job

    def wait(self, job_id: str, done: Any, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(job := self.job(job_id)):
                return job
            time.sleep(0.1)
        pytest.fail(f"job {job_id} is stuck at {self.job(job_id)}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)
        self.client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_exit(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"worker process {pid} outlived the API process")


def _mid_run(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and bool((job["progress"] or {}).get("fraction"))


def _finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


@contextmanager
def _server(models_dir: Path, data_dir: Path) -> Iterator[Server]:
    server = Server(models_dir, data_dir)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def _store(data_dir: Path) -> Iterator[JobStore]:
    store = JobStore(data_dir / "jobs.sqlite3")
    try:
        yield store
    finally:
        store.close()


def test_sigkill_mid_job_then_restart_runs_it_again_once_and_loses_none_of_20_queued(
        tiny_models_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _server(tiny_models_dir, data_dir) as server:
        server.start()
        long = server.submit(NOVEL[:20_000], book_id="pride")
        queued = [server.submit(f"Queued book number {n}. Mr. Bingley smiled.", pipeline=["supersense"])
                  for n in range(20)]
        server.wait(long, _mid_run)
        with _store(data_dir) as store:
            workers = [worker.pid for worker in store.workers().values()]
        assert len(workers) == 1
        assert server.signal(signal.SIGKILL) == -signal.SIGKILL
        _wait_for_exit(workers[0])  # no orphan: the worker process notices the API is gone and stops

        with _store(data_dir) as store:
            killed = store.get(long)
            # The orphaned worker stopped as on SIGTERM: its job went back to the front of the queue.
            assert killed is not None and (killed.status, killed.attempts) == ("queued", 1)
            assert sorted(store.ids("queued")) == sorted([long, *queued])
            assert store.workers() == {}

        server.start()
        rerun = server.wait(long, _finished)
        assert (rerun["status"], rerun["attempts"]) == ("succeeded", 2), rerun["error"]
        finished = [server.wait(job_id, _finished) for job_id in queued]
        assert {job["status"] for job in finished} == {"succeeded"}
        assert all(job["started_at"] > rerun["started_at"] for job in finished)  # the recovered job went first
        assert server.client.get(f"/v1/jobs/{long}/result").json()["book_id"] == "pride"

    with _store(data_dir) as store:
        recorded = store.get(long)
    assert recorded is not None and recorded.result_dir is not None
    assert [p.name for p in (data_dir / "results").glob(f"{long}.*")] == [recorded.result_dir]
    assert list((data_dir / "work").iterdir()) == []
    assert list((data_dir / "texts").iterdir()) == []
    assert HueyJobQueue.sqlite(data_dir / "queue.sqlite3").pending() == set()


def test_sigterm_requeues_the_running_job_and_the_restarted_service_finishes_it(
        tiny_models_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _server(tiny_models_dir, data_dir) as server:
        server.start()
        job_id = server.submit(NOVEL[40_000:50_000])
        server.wait(job_id, _mid_run)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status still names it.
        assert server.signal(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.tail()

        with _store(data_dir) as store:
            stopped = store.get(job_id)
            assert stopped is not None and (stopped.status, stopped.attempts) == ("queued", 1)
            assert stopped.worker_id is None and store.workers() == {}
        assert HueyJobQueue.sqlite(data_dir / "queue.sqlite3").pending() == {job_id}
        assert "re-queued" in server.tail()

        server.start()
        done = server.wait(job_id, _finished)
        assert (done["status"], done["attempts"]) == ("succeeded", 2), done["error"]

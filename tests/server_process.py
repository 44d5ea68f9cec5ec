"""`booknlp-api serve` as a real process for tests: started, signalled and restarted on one data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from booknlp_api.jobs.database import SQLITE_FILE
from booknlp_api.jobs.store import JobStore
from tests.conftest import AUTH, READY_SECONDS, database_setting, hold_seam_env, keys_file

CLI = Path(sys.executable).with_name("booknlp-api")


class Server:
    """One `booknlp-api serve` process on a data folder; restartable on the same folder."""

    def __init__(self, models_dir: Path, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.hold = data_dir.parent / f"{data_dir.name}.hold"
        """While this file exists, the worker waits before each BERT batch (tests/seams): a job stays running."""
        self.env = {**hold_seam_env(self.hold), "BOOKNLP_MODELS_DIR": str(models_dir), "BOOKNLP_MODEL": "tiny",
                    "BOOKNLP_DATA_DIR": str(data_dir), "BOOKNLP_TORCH_THREADS": "1", "BOOKNLP_LOG_LEVEL": "info",
                    "BOOKNLP_SHUTDOWN_GRACE_SECONDS": "1",
                    "BOOKNLP_API_KEYS_FILE": str(keys_file(data_dir.parent)), **settings}
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(timeout=60, headers=AUTH)

    @property
    def database_url(self) -> str | None:
        """``BOOKNLP_DATABASE_URL`` of this server: None for the data folder's SQLite."""
        return self.env.get("BOOKNLP_DATABASE_URL")

    def store(self) -> AbstractContextManager[JobStore]:
        """The job store this server uses, opened apart from it (readable while no server is up)."""
        return job_store(self.data_dir, self.database_url)

    def start(self, until: str = "/v1/ready") -> None:
        """Start, and wait until ``until`` answers 200 (readiness: a worker process has loaded the models)."""
        port = free_port()
        self.client.base_url = httpx.URL(f"http://127.0.0.1:{port}")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.tail()}"
            try:
                if self.client.get(until).status_code == 200:
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_exit(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"worker process {pid} outlived the API process")


def is_mid_run(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and bool((job["progress"] or {}).get("fraction"))


def has_finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def database_env(database_url: str) -> dict[str, str]:
    """The environment that puts a server on a ``database_url`` fixture's database (none: SQLite in its folder)."""
    setting = database_setting(database_url)
    return {} if setting is None else {"BOOKNLP_DATABASE_URL": setting}


@contextmanager
def running_server(models_dir: Path, data_dir: Path, **settings: str) -> Iterator[Server]:
    server = Server(models_dir, data_dir, **settings)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def job_store(data_dir: Path, database_url: str | None = None) -> Iterator[JobStore]:
    """The job store of a server on ``data_dir`` (its SQLite file) or on ``database_url`` (PostgreSQL)."""
    store = JobStore(database_url or data_dir / SQLITE_FILE)
    try:
        yield store
    finally:
        store.close()

"""Worker processes started apart from the API (BOOKNLP_WORKERS=0 and `booknlp-api worker`), more than one,
without preloading: readiness follows them, and jobs are shared out between them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.server_process import CLI, Server, has_finished, job_store, running_server


@contextmanager
def _workers(server: Server, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` `booknlp-api worker` processes on the server's data folder, models not preloaded."""
    env = {**server.env, "BOOKNLP_PRELOAD": "false"}
    with server.log.open("ab") as log:
        processes = [subprocess.Popen([str(CLI), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
                     for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready_workers(server: Server, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with job_store(server.data_dir) as store:
            if sum(w.state == "ready" for w in store.workers().values()) == count:
                return
        time.sleep(0.2)
    pytest.fail(f"{count} workers never became ready:\n{server.tail()}")


@pytest.mark.timeout(1200)
def test_an_api_without_workers_is_not_ready_until_separate_workers_connect_and_they_share_the_jobs(
        tiny_models_dir: Path, tmp_path: Path) -> None:
    with running_server(tiny_models_dir, tmp_path / "data", BOOKNLP_WORKERS="0") as server:
        server.start(until="/v1/health")
        alone = server.client.get("/v1/ready")
        assert alone.status_code == 503 and alone.json()["error"]["details"] == {"state": "no_worker"}

        with _workers(server, 2):
            _ready_workers(server, 2)
            ready = server.client.get("/v1/ready")
            # BOOKNLP_PRELOAD=false: ready at once, with no model loaded yet (they load with the first job).
            assert ready.status_code == 200 and ready.json()["models"] == [], ready.text

            server.hold.touch()  # each job stays running until both are: two workers, one job each
            try:
                jobs = [server.submit(f"Book {n}. Mr. Darcy bowed.", pipeline=["supersense"]) for n in range(2)]
                for job_id in jobs:
                    server.wait(job_id, lambda job: job["status"] == "running")
                with job_store(server.data_dir) as store:
                    runners = {store.get(job_id).worker_id for job_id in jobs}  # type: ignore[union-attr]
                    workers = set(store.workers())
                assert len(runners) == 2 and runners <= workers
            finally:
                server.hold.unlink(missing_ok=True)
            done = [server.wait(job_id, has_finished) for job_id in jobs]
            assert [job["status"] for job in done] == ["succeeded", "succeeded"], done

        # Stopped workers deregister: the API has nobody to run analyses again.
        gone = server.client.get("/v1/ready")
        assert gone.status_code == 503 and gone.json()["error"]["details"] == {"state": "no_worker"}

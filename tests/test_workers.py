"""Worker processes started apart from the API (BOOKNLP_WORKERS=0 and `booknlp-api worker`), more than one,
without preloading: readiness follows them, and jobs are shared out between them. A device list
(BOOKNLP_DEVICES) starts one worker process per device, here real processes on the CPU; devices this
machine lacks (cuda:98, cuda:99 exist nowhere) are named at start and the workers fall back.

Sharing jobs runs on both databases; on PostgreSQL each worker has a data folder of its own, so the
database alone carries claims and wake-ups. The device-list tests are about the device plan, not the
store, and run on SQLite only."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from booknlp_api.config import Settings
from booknlp_api.jobs.supervisor import worker_env
from tests.conftest import expected_device
from tests.server_process import CLI, Server, database_env, free_port, has_finished, running_server


@contextmanager
def _workers(server: Server, count: int, **settings: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` `booknlp-api worker` processes on the server's database, models not preloaded: on its data
    folder (SQLite), or each on a folder of its own (PostgreSQL: nothing shared but the database URL)."""
    env = {**server.env, "BOOKNLP_PRELOAD": "false", **settings}
    folders = [server.data_dir if server.database_url is None else server.data_dir.with_name(f"worker{n}")
               for n in range(count)]
    with server.log.open("ab") as log:
        processes = [subprocess.Popen([str(CLI), "worker"], env={**env, "BOOKNLP_DATA_DIR": str(folder)},
                                      stdout=log, stderr=subprocess.STDOUT) for folder in folders]
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


def _assert_no_worker(server: Server) -> None:
    response = server.client.get("/v1/ready")
    assert response.status_code == 503 and response.json()["error"]["details"] == {"state": "no_worker"}


def _ready_workers(server: Server, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.store() as store:
            if sum(w.state == "ready" for w in store.workers().values()) == count:
                return
        time.sleep(0.2)
    pytest.fail(f"{count} workers never became ready:\n{server.tail()}")


@pytest.mark.timeout(1200)
def test_an_api_without_workers_is_not_ready_until_separate_workers_connect_and_they_share_the_jobs(
        tiny_models_dir: Path, tmp_path: Path, database_url: str) -> None:
    with running_server(tiny_models_dir, tmp_path / "data", BOOKNLP_WORKERS="0",
                        **database_env(database_url)) as server:
        server.start(until="/v1/health")
        _assert_no_worker(server)

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
                with server.store() as store:
                    runners = {store.get(job_id).worker_id for job_id in jobs}  # type: ignore[union-attr]
                    workers = set(store.workers())
                assert len(runners) == 2 and runners <= workers
            finally:
                server.hold.unlink(missing_ok=True)
            done = [server.wait(job_id, has_finished) for job_id in jobs]
            assert [job["status"] for job in done] == ["succeeded", "succeeded"], done

        # Stopped workers deregister: the API has nobody to run analyses again.
        _assert_no_worker(server)


@pytest.mark.timeout(600)
def test_a_worker_on_its_own_serves_its_job_metrics_on_its_port(tiny_models_dir: Path, tmp_path: Path) -> None:
    port, scratch = free_port(), tmp_path / "tmp"
    scratch.mkdir()
    with running_server(tiny_models_dir, tmp_path / "data", BOOKNLP_WORKERS="0") as server:
        server.start(until="/v1/health")
        with _workers(server, 1, BOOKNLP_WORKER_METRICS_PORT=str(port), TMPDIR=str(scratch)):
            _ready_workers(server, 1)
            job = server.wait(server.submit("Book. Mr. Darcy bowed.", pipeline=["supersense"]), has_finished)
            assert job["status"] == "succeeded", job
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60)
            assert scraped.status_code == 200, scraped.text
            assert len(_metrics_folders(scratch)) == 1
    found = {(s.name, frozenset(s.labels.items())): s.value
             for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert found[("booknlp_jobs_finished_total", frozenset({"status": "succeeded", "code": ""}.items()))] == 1
    device = {"model": "tiny", "device": expected_device().device}
    assert found[("booknlp_job_duration_seconds_count", frozenset(device.items()))] == 1
    assert found[("booknlp_tokens_analysed_total", frozenset({"model": "tiny"}.items()))] > 0
    assert _metrics_folders(scratch) == [], "the worker removed its metrics folder when it stopped"


def _metrics_folders(scratch: Path) -> list[Path]:
    # Only the metrics folder: the wake sockets also go under the temp folder when the data folder's path is too
    # long for a socket name (pytest's tmp paths can be), and they stay, shared by every process of that folder.
    return [path for path in scratch.iterdir() if path.name.startswith("booknlp-worker-metrics")]


def test_the_processes_a_worker_command_starts_leave_the_metrics_port_to_it(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path, data_dir=tmp_path, worker_metrics_port=9464)
    assert "BOOKNLP_WORKER_METRICS_PORT" not in worker_env(settings, 2)
    assert worker_env(settings, 2)["BOOKNLP_DATA_DIR"] == str(tmp_path)


@pytest.mark.timeout(600)
def test_a_device_list_makes_one_worker_command_start_a_pinned_worker_process_per_device_listed_in_ready(
        tiny_models_dir: Path, tmp_path: Path) -> None:
    with running_server(tiny_models_dir, tmp_path / "data", BOOKNLP_WORKERS="0") as server:
        server.start(until="/v1/health")
        with _workers(server, 1, BOOKNLP_DEVICES="cpu,cuda:98,cpu") as (command,):
            _ready_workers(server, 2)
            ready = server.client.get("/v1/ready")
            assert ready.status_code == 200, ready.text
            workers = ready.json()["workers"]
            assert [(w["host"], w["state"], w["device"]["device"]) for w in workers] == \
                [(socket.gethostname(), "ready", "cpu")] * 2
            pids = {w["pid"] for w in workers}
            assert len(pids) == 2 and command.pid not in pids, "two worker processes under the one command"
            assert "BOOKNLP_DEVICES names cuda:98 but this machine has" in server.log.read_text(errors="replace")
        # SIGTERM to the command stops both of its workers, which deregister.
        assert command.returncode == 0
        _assert_no_worker(server)


@pytest.mark.timeout(600)
def test_serve_names_the_listed_devices_the_machine_lacks_and_falls_back_to_its_one_device_setting(
        tiny_models_dir: Path, tmp_path: Path) -> None:
    with running_server(tiny_models_dir, tmp_path / "data", BOOKNLP_DEVICES="cuda:98,cuda:99") as server:
        server.start()
        [worker] = server.client.get("/v1/ready").json()["workers"]
        assert worker["state"] == "ready" and worker["device"]["device"] == expected_device().device
        log = server.log.read_text(errors="replace")
        assert "BOOKNLP_DEVICES names cuda:98, cuda:99 but this machine has" in log
        assert "falling back to 1 worker(s) on BOOKNLP_DEVICE=" in log

"""`booknlp-api serve` as a real process on a free port: probes, liveness while an analysis runs in the
worker process, and the worker process restarted when it dies."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.corpus import text_path
from booknlp_api.jobs.store import JobStore
from tests.conftest import AUTH, READY_SECONDS, assert_reported_device, hold_seam_env, keys_file

CLI = Path(sys.executable).with_name("booknlp-api")


@dataclass
class Served:
    client: httpx.Client
    data_dir: Path
    hold: Path
    """While this file exists, the worker process waits before each BERT batch (tests/seams)."""
    log_path: Path

    def worker_pids(self) -> list[int]:
        store = JobStore(self.data_dir / "jobs.sqlite3")
        try:
            return [worker.pid for worker in store.workers().values() if worker.state == "ready"]
        finally:
            store.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    assert CLI.is_file(), f"{CLI} is missing: run ./scripts/setup.sh"
    port = _free_port()
    folder = tmp_path_factory.mktemp("server")
    hold = folder / "hold"
    env = {**hold_seam_env(hold), "BOOKNLP_MODELS_DIR": str(tiny_models_dir), "BOOKNLP_MODEL": "tiny",
           "BOOKNLP_LOG_LEVEL": "warning", "BOOKNLP_TORCH_THREADS": "1", "BOOKNLP_DATA_DIR": str(folder / "data"),
           "BOOKNLP_API_KEYS_FILE": str(keys_file(folder))}
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=AUTH) as client:
            _wait_until_ready(client, process, log_path)
            yield Served(client, folder / "data", hold, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(client: httpx.Client, process: subprocess.Popen[bytes] | None = None,
                      log_path: Path | None = None) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process is not None and log_path is not None:
            assert process.poll() is None, f"the server exited:\n{log_path.read_text(errors='replace')[-3000:]}"
        try:
            if client.get("/v1/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail("not ready in time" + (f":\n{log_path.read_text(errors='replace')[-3000:]}" if log_path else ""))


def test_served_process_is_ready_on_this_machines_device_with_synthetic_models(served: Served) -> None:
    server = served.client
    assert server.get("/v1/health").json() == {"status": "ok"}
    ready = server.get("/v1/ready").json()
    assert_reported_device(ready["device"])
    assert ready["synthetic_models"] is True
    assert [(m["name"], m["synthetic"]) for m in ready["models"]] == [("tiny", True)]
    assert [m["loaded"] for m in server.get("/v1/info").json()["models"]] == [True]
    assert len(served.worker_pids()) == 1


def test_upstream_noise_stays_out_of_the_server_log(served: Served) -> None:
    """The worker process has imported and loaded upstream's models: none of their chatter reached the log."""
    assert served.worker_pids()
    log = served.log_path.read_text(errors="replace")
    for noise in ("pkg_resources", "new embeddings will be initialized", "mean_resizing", "using device"):
        assert noise not in log, log[-3000:]


def test_health_answers_promptly_while_an_analysis_runs(served: Served) -> None:
    server = served.client
    text = text_path("the_call_of_the_wild.txt").read_text(encoding="utf-8")[:3000]
    request = {"text": text, "pipeline": ["entity", "supersense", "event"], "exclude": ["tokens"], "cache": False}
    latencies: list[float] = []
    runs = 0
    deadline = time.monotonic() + 300
    # Analyses one after another until /v1/health has been timed 20 times while one was running (a fast
    # machine finishes one before that); measured, not slept through: each call only while the job runs.
    while len(latencies) < 20:
        assert time.monotonic() < deadline, f"only {len(latencies)} health calls overlapped {runs} analyses"
        response = server.post("/v1/jobs", json=request)
        assert response.status_code == 202, response.text
        runs += 1
        while (job := server.get(response.headers["location"]).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            if job["status"] == "running":
                started = time.perf_counter()
                assert server.get("/v1/health").status_code == 200
                latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
        assert job["status"] == "succeeded", job["error"]
    print(f"/v1/health during {runs} analyses of 3,000 characters: {len(latencies)} calls, "
          f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    # Lenient, for loaded CI machines: a stalled event loop would wait on spaCy's parse (seconds) every time.
    assert statistics.median(latencies) < 1.0


def test_a_worker_process_killed_mid_job_is_restarted_and_the_job_completes(served: Served) -> None:
    server = served.client
    text = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8")[:12_000]
    served.hold.touch()  # the job is still running when the kill comes, however fast the machine
    try:
        response = server.post("/v1/jobs", json={"text": text, "cache": False})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        _wait_for(server, job_id,
                  lambda job: job["status"] == "running" and bool((job["progress"] or {}).get("fraction")))
        [pid] = served.worker_pids()
        os.kill(pid, signal.SIGKILL)
    finally:
        served.hold.unlink(missing_ok=True)
    assert server.get("/v1/health").status_code == 200  # the API is untouched
    done = _wait_for(server, job_id, lambda job: job["status"] in ("succeeded", "failed", "cancelled"))
    assert (done["status"], done["attempts"]) == ("succeeded", 2), done["error"]
    _wait_until_ready(server)
    assert served.worker_pids() != [pid]


def _wait_for(client: httpx.Client, job_id: str, done: Any, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} is stuck at {client.get(f'/v1/jobs/{job_id}').json()}")

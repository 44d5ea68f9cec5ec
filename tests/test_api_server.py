"""`booknlp-api serve` as a real process on a free port: probes, and liveness while an analysis runs."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLI = Path(sys.executable).with_name("booknlp-api")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    assert CLI.is_file(), f"{CLI} is missing: run ./scripts/setup.sh"
    port = _free_port()
    folder = tmp_path_factory.mktemp("server")
    env = {**os.environ, "BOOKNLP_MODELS_DIR": str(tiny_models_dir), "BOOKNLP_MODEL": "tiny",
           "BOOKNLP_LOG_LEVEL": "warning", "BOOKNLP_TORCH_THREADS": "1", "BOOKNLP_DATA_DIR": str(folder / "data")}
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            _wait_until_ready(client, process, log_path)
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(client: httpx.Client, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited:\n{log_path.read_text(errors='replace')[-3000:]}"
        try:
            if client.get("/v1/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"not ready in time:\n{log_path.read_text(errors='replace')[-3000:]}")


def test_served_process_is_ready_on_cpu_with_synthetic_models(server: httpx.Client) -> None:
    assert server.get("/v1/health").json() == {"status": "ok"}
    ready = server.get("/v1/ready").json()
    assert ready["device"]["device"] == "cpu"
    assert ready["synthetic_models"] is True
    assert [(m["name"], m["synthetic"]) for m in ready["models"]] == [("tiny", True)]


def test_health_answers_promptly_while_an_analysis_runs(server: httpx.Client) -> None:
    text = (SHARED_DATA / "texts" / "the_call_of_the_wild.txt").read_text(encoding="utf-8")[:3000]
    request = {"text": text, "pipeline": ["entity", "supersense", "event"], "exclude": ["tokens"]}
    outcome: dict[str, httpx.Response] = {}
    analysis = threading.Thread(target=lambda: outcome.update(
        response=server.post("/v1/analyze", json=request, timeout=300)))
    analysis.start()
    time.sleep(0.5)  # let the analysis reach the engine
    latencies = []
    while analysis.is_alive():
        started = time.perf_counter()
        assert server.get("/v1/health").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    analysis.join()
    assert outcome["response"].status_code == 200, outcome["response"].text
    print(f"/v1/health during a {outcome['response'].json()['token_count']}-token analysis: {len(latencies)} calls, "
          f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert len(latencies) >= 10, "the analysis ended too soon to measure anything"
    assert max(latencies) < 1.0  # generous: shared CI machines stall; the 100 ms target is measured separately

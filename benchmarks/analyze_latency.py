"""Warm ``POST /v1/analyze`` latency at the client, against the real ``booknlp-api serve``.

Starts ``booknlp-api serve`` (API process plus its worker process) on a free port with a fresh data
folder, waits for readiness, sends ``--warmup`` requests that are not counted, then ``--requests``
timed ones (``"cache": false``, so each one runs the engine), and prints client latency (median, p90,
min, max) next to the engine's own time for the same requests (the sum of the result's ``timings``):
the difference is what the service adds (HTTP, queue hand-over, result JSON, waiting for the job).

    python -m benchmarks.analyze_latency --size small --tokens 1000 --requests 20

The text is the first ``--tokens`` words (whitespace-separated, so a little more in spaCy tokens:
the real count is printed) of *Pride and Prejudice* from ``benchmarks/texts/``; ``--text`` (repeatable)
measures other texts one after another on the same server, ``--text all`` every benchmark novel. The
number of quotes matters: speaker attribution runs the speaker BERT once per quote window, so a
dialogue-heavy opening costs several times a narrative one of the same length. Models are synthesized
(random weights, seed 0) when the models folder has none of that size.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.corpus import text_path
from benchmarks.engine_vs_upstream import ensure_models
from booknlp_api.jobs.store import JobStore

READY_TIMEOUT = 300.0
_TEXTS = Path(__file__).resolve().parent / "texts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(models_dir: Path, model: str, data_dir: Path, threads: int | None, workers: int = 1,
            settings: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """``booknlp-api serve`` in a subprocess, ready, and a client for it; stopped with SIGTERM afterwards.
    ``settings`` (environment variables) override the defaults below."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOOKNLP_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), BOOKNLP_MODELS_DIR=str(models_dir),
               BOOKNLP_MODEL=model, BOOKNLP_DATA_DIR=str(data_dir), BOOKNLP_PORT=str(port),
               BOOKNLP_LOG_LEVEL="warning", BOOKNLP_WORKERS=str(workers),
               BOOKNLP_ANALYZE_WAIT_SECONDS="3600",  # a busy machine must not turn answers into 202s
               BOOKNLP_AUTH="disabled")  # no API keys: a loopback server for this benchmark alone
    if threads:
        env["BOOKNLP_TORCH_THREADS"] = str(threads)
    env.update(settings or {})
    process = subprocess.Popen([sys.executable, "-m", "booknlp_api.cli", "serve"], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/v1/ready").status_code == 200 and _workers_ready(data_dir) >= workers:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("booknlp-api serve did not become ready")
                time.sleep(0.2)
            yield client
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _workers_ready(data_dir: Path) -> int:
    """Worker processes that have loaded their models (readiness needs only one)."""
    store = JobStore(data_dir / "jobs.sqlite3")
    try:
        return sum(1 for worker in store.workers().values() if worker.state == "ready")
    finally:
        store.close()


def first_words(path: Path, words: int) -> str:
    text = path.read_text(encoding="utf-8-sig")
    cut, seen = 0, 0
    for seen, part in enumerate(text.split(), start=1):
        cut = text.index(part, cut) + len(part)
        if seen >= words:
            break
    return text[:cut]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _texts(chosen: list[str] | None) -> list[Path]:
    if not chosen:
        return [text_path("pride_and_prejudice.txt")]
    paths: list[Path] = []
    for name in chosen:
        paths.extend(sorted(_TEXTS.glob("*.txt")) if name == "all" else [Path(name)])
    return paths


def _measure(client: httpx.Client, path: Path, words: int, warmup: int, requests: int,
             precision: str = "exact") -> None:
    """Time ``requests`` warm analyses of the first ``words`` words of ``path`` and print one block."""
    body = {"text": first_words(path, words), "cache": False, "precision": precision}
    client_s: list[float] = []
    engine_s: list[float] = []
    tokens = quotes = 0
    for i in range(warmup + requests):
        started = time.perf_counter()
        response = client.post("/v1/analyze", json=body)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        if response.status_code != 200:
            raise RuntimeError(f"expected a result, got {response.status_code}: {response.text[:300]}")
        result = response.json()
        tokens, quotes = result["token_count"], len(result.get("quotes") or [])
        if i >= warmup:
            client_s.append(elapsed)
            engine_s.append(sum(result["timings"].values()))
    overhead = [c - e for c, e in zip(client_s, engine_s, strict=True)]
    print(f"\n{path.name}: first {words} words = {tokens} spaCy tokens, {quotes} quotes, {precision}")
    for label, values in (("client", client_s), ("engine (sum of timings)", engine_s),
                          ("service overhead (client - engine)", overhead)):
        print(f"  {label:36} median {statistics.median(values):.3f} s   p90 {percentile(values, 0.9):.3f} s   "
              f"min {min(values):.3f} s   max {max(values):.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "big"], default="small")
    parser.add_argument("--text", action="append", help="a text file, or 'all' for every benchmark novel "
                        "(repeatable; default: benchmarks/texts/pride_and_prejudice.txt)")
    parser.add_argument("--tokens", type=int, default=1000, help="whitespace words taken from the text's start")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads in the worker (default: torch's)")
    parser.add_argument("--precision", choices=["exact", "fast"], action="append",
                        help="repeatable: each text is measured in each precision (default: exact)")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    args = parser.parse_args()

    ensure_models(args.models_dir, args.size, seed=0)
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"{args.size} synthetic models (random weights: output meaningless), full pipeline, "
          f"{args.requests} warm requests after {args.warmup} warm-up, per text")
    with tempfile.TemporaryDirectory(prefix="booknlp-latency-") as data, \
            serving(args.models_dir, args.size, Path(data), args.threads) as client:
        for path in _texts(args.text):
            for precision in args.precision or ["exact"]:
                _measure(client, path, args.tokens, args.warmup, args.requests, precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())

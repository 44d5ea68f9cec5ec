"""What the job queue costs on top of the analysis, and what serving a novel's result costs.

Runs the real service (uvicorn on loopback, in this process) on tiny synthetic models and prints:

* submit→start latency of a job when the worker is idle, and per-job time outside the engine
  (claim, progress writes, result.json, publish), from the job records' own timestamps;
* the same with a backlog of jobs submitted at once;
* HTTP latency of POST /v1/jobs (a short text, and a novel's 880K characters as JSON) and of a status poll;
* a novel's result: building result.json at the end of a job, then fetching it in every form. The
  result is Emma's: BookNLP's published reference files (entities, quotes, supersense, book) plus a
  ``.tokens`` file written here from Emma's words (the reference has none), so the sizes are a real novel's.
  Emma's text ships in ``benchmarks/texts/``; the reference files (3.9 MB, MIT) do not: pass
  ``--reference DIR`` (BookNLP's repository, ``examples/158_emma/``); without it this part is skipped.

    python -m benchmarks.queue_overhead --jobs 20 [--text FILE] [--reference booknlp/examples/158_emma]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchmarks.corpus import text_path
from booknlp_api.api.app import create_app
from booknlp_api.config import Settings
from booknlp_api.engine.result_schema import SECTIONS
from booknlp_api.jobs.files import RESULT_JSON
from booknlp_api.jobs.records import AnalysisInfo, Job
from booknlp_api.jobs.results import store_result_json
from booknlp_api.jobs.service import JobService

# Where a checkout beside this project's shared data keeps BookNLP's published Emma output, if anywhere.
EMMA_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "booknlp_emma_reference"
TINY_JOB = {"pipeline": ["supersense"], "cache": False}


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[tuple[httpx.Client, JobService]]:
    app = create_app(settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if client.get("/v1/ready").status_code == 200:
                    break
            time.sleep(0.1)
        try:
            yield client, app.state.runtime.jobs
        finally:
            server.should_exit = True
            thread.join(60)


def say(line: str) -> None:
    # The engine redirects sys.stdout while a stage runs (upstream prints), so write to the real one.
    print(line, file=sys.__stdout__, flush=True)


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def _finish(jobs: JobService, job_ids: list[str]) -> list[Job]:
    while not all(jobs.get(job_id).finished for job_id in job_ids):
        time.sleep(0.01)
    done = [jobs.get(job_id) for job_id in job_ids]
    assert {job.status for job in done} == {"succeeded"}, [job.error for job in done]
    return done


def _spread(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"median {statistics.median(ms):.1f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.1f} ms, max {ms[-1]:.1f} ms"


def _overheads(done: list[Job]) -> list[float]:
    return [job.finished_at - job.started_at - sum(job.analysis.timings.values())  # type: ignore[operator,union-attr]
            for job in done]


def queue_latency(client: httpx.Client, jobs: JobService, count: int) -> None:
    one_by_one = []
    for n in range(count):
        job_id = client.post("/v1/jobs", json={"text": f"Emma smiled at Mr. Knightley, time {n}.", **TINY_JOB}).json()
        one_by_one += _finish(jobs, [job_id["id"]])
    say(f"idle worker, {count} jobs one after another:")
    say(f"  submit→start  {_spread([j.started_at - j.created_at for j in one_by_one])}")  # type: ignore[operator]
    say(f"  outside the engine per job  {_spread(_overheads(one_by_one))}")
    started = time.perf_counter()
    ids = [client.post("/v1/jobs", json={"text": f"Harriet blushed, time {n}.", **TINY_JOB}).json()["id"]
           for n in range(count)]
    backlog = _finish(jobs, ids)
    wall = time.perf_counter() - started
    engine = sum(sum(j.analysis.timings.values()) for j in backlog)  # type: ignore[union-attr]
    say(f"backlog of {count} submitted at once: {wall:.2f} s wall, {engine:.2f} s in the engine, "
          f"{(wall - engine) / count * 1000:.1f} ms per job outside it")
    say(f"  outside the engine per job  {_spread(_overheads(backlog))}")


def http_latency(client: httpx.Client, jobs: JobService, novel_path: Path) -> None:
    posts = [_timed(lambda: client.post("/v1/jobs", json={"text": "Mr. Woodhouse sighed.", **TINY_JOB}))
             for _ in range(20)]
    _finish(jobs, [response.json()["id"] for _, response in posts])
    say(f"POST /v1/jobs, a short text: {_spread([seconds for seconds, _ in posts])}")
    novel = novel_path.read_text(encoding="utf-8-sig")
    # Queued behind a short job, so that it can be cancelled before it starts.
    ahead = client.post("/v1/jobs", json={"text": novel[:3000], "cache": False}).json()["id"]
    seconds, response = _timed(lambda: client.post("/v1/jobs", json={"text": novel, "cache": False}))
    say(f"POST /v1/jobs, {novel_path.name} ({len(novel):,} characters as JSON): {seconds * 1000:.0f} ms")
    assert client.delete(f"/v1/jobs/{response.json()['id']}").json()["status"] == "cancelled"
    _finish(jobs, [ahead])
    job_id = posts[0][1].json()["id"]
    polls = [_timed(lambda: client.get(f"/v1/jobs/{job_id}"))[0] for _ in range(200)]
    say(f"GET /v1/jobs/{{id}} (status poll): {_spread(polls)}")
    again = {"text": "Mr. Woodhouse sighed.", "pipeline": ["supersense"]}
    cached = [_timed(lambda: client.post("/v1/jobs", json=again)) for _ in range(10)]
    assert all(response.json()["cached"] for _, response in cached)
    say(f"POST /v1/jobs answered from the result cache: {_spread([seconds for seconds, _ in cached])}")


def write_emma_tokens(path: Path, text: str) -> int:
    """A ``.tokens`` file with Emma's words and punctuation, one per row, in BookNLP's 13 columns."""
    rows = ["\t".join(["paragraph_ID", "sentence_ID", "token_ID_within_sentence", "token_ID_within_document", "word",
                       "lemma", "byte_onset", "byte_offset", "POS_tag", "fine_POS_tag", "dependency_relation",
                       "syntactic_head_ID", "event"])]
    paragraph = sentence = in_sentence = 0
    for index, match in enumerate(re.finditer(r"\n\s*\n|\w+|[^\w\s]", text)):
        if match.group().isspace():
            paragraph += 1
            continue
        word = match.group()
        event = "EVENT" if index % 37 == 0 else "O"
        rows.append(f"{paragraph}\t{sentence}\t{in_sentence}\t{len(rows) - 1}\t{word}\t{word.lower()}\t"
                    f"{match.start()}\t{match.end()}\tX\tX\tdep\t{len(rows) - 1}\t{event}")
        in_sentence += 1
        if word in ".!?":
            sentence, in_sentence = sentence + 1, 0
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(rows) - 1


def novel_result(client: httpx.Client, jobs: JobService, reference: Path) -> None:
    run = jobs.files.new_run("emma")
    for source in reference.glob("158_emma.*"):
        shutil.copy(source, run / source.name.replace("158_emma", "emma"))
    tokens = write_emma_tokens(run / "emma.tokens", text_path("emma.txt").read_text(encoding="utf-8"))
    info = AnalysisInfo(model="reference", pipeline=["entity", "quote", "supersense", "event", "coref"],
                        device="cpu", synthetic_models=False, token_count=tokens, timings={}, precision="exact")
    build_s, _ = _timed(lambda: store_result_json(run, "emma", info, SECTIONS))
    now = time.time()
    jobs.store.insert(Job(id="emma", seq=0, status="succeeded", book_id="emma", model="reference",
                          pipeline=tuple(info.pipeline), sections=None, text_chars=0, text_offset=0,
                          cache_key="emma", created_at=now, started_at=now, finished_at=now, expires_at=now + 3600,
                          analysis=info, result_dir=jobs.files.publish(run)))
    size = (jobs.files.result(jobs.get("emma").result_dir or "") / RESULT_JSON).stat().st_size
    say(f"Emma's result ({tokens:,} tokens; reference entities/quotes/supersense/book): "
          f"result.json built at job end in {build_s:.2f} s, {size / 1e6:.1f} MB")
    for label, params in (("full JSON (stored result.json, streamed)", {}),
                          ("JSON without tokens (built from native files)", {"exclude": "tokens"}),
                          ("characters only", {"sections": "characters"}),
                          ("native zip, first request (zipped then)", {"format": "native"}),
                          ("native zip, again (stored)", {"format": "native"})):
        seconds, response = _timed(lambda p=params: client.get("/v1/jobs/emma/result", params=p))  # type: ignore[misc]
        assert response.status_code == 200, response.text
        say(f"  GET result, {label}: {seconds:.2f} s, {len(response.content) / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20, help="jobs per latency run")
    parser.add_argument("--models-dir", type=Path, help="a folder holding tiny/ (default: synthesized here)")
    parser.add_argument("--text", type=Path, help="the novel POSTed whole (default: benchmarks/texts/emma.txt)")
    parser.add_argument("--reference", type=Path, default=EMMA_REFERENCE,
                        help="BookNLP's published output for Emma (158_emma.entities, .quotes, .supersense, .book)")
    args = parser.parse_args()
    say(f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="queue-bench-") as scratch:
        models_dir = args.models_dir
        if models_dir is None:
            from booknlp_api.models.synthesize import synthesize

            models_dir = Path(scratch) / "models"
            synthesize("tiny", models_dir)
        # No API keys: a loopback server measuring the queue, comparable with figures from before keys existed.
        settings = Settings(models_dir=models_dir, model="tiny", data_dir=Path(scratch) / "data", torch_threads=1,
                            log_level="warning", max_queued_jobs=10_000, max_job_bytes=4_000_000, auth="disabled")
        with serving(settings) as (client, jobs):
            queue_latency(client, jobs, args.jobs)
            http_latency(client, jobs, args.text or text_path("emma.txt"))
            if (args.reference / "158_emma.book").is_file():
                novel_result(client, jobs, args.reference)
            else:
                say(f"Emma's result: skipped, no BookNLP reference output in {args.reference} (see --reference)")


if __name__ == "__main__":
    main()

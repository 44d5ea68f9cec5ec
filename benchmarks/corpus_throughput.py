"""Books per hour through the job API, against upstream ``process()`` run on one book after another.

Ten books go through ``POST /v1/jobs`` of a real ``booknlp-api serve`` (already warm: models loaded,
as a service is), submitted at once, in each worker layout asked for (``--layouts``: workers x torch
threads, e.g. ``1x2`` = one worker with two threads, ``2x1`` = two workers with one thread each);
the clock runs from the first submission to the last job's end. Upstream runs the same ten books
one after another in one process (import once, as a script over a corpus would), timed as the sum
of its ``process()`` calls, i.e. without its per-book model load. Every job's native files are
compared byte for byte with upstream's.

The ten books are slices of the benchmark novels: ``--chars`` characters each (cut at a paragraph
end), taken in turn from each novel (book 1 = the start of the first novel, book 2 = the start of
the second, ..., book 5 = the first novel's second slice, ...). ``--chars 0`` takes whole novels
(hours on a small CPU machine).

    python -m benchmarks.corpus_throughput --size small --chars 20000 --layouts 1x2 2x1
"""

from __future__ import annotations

import argparse
import filecmp
import io
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

from benchmarks.analyze_latency import serving
from benchmarks.corpus import TEXTS, text_path
from benchmarks.engine_vs_upstream import ensure_models
from benchmarks.upstream import UpstreamRun, run_upstream_batch

NOVELS = tuple(TEXTS)
"""The benchmark novels of ``benchmarks/texts/``, in the order ``benchmarks.corpus`` lists them."""
JOB_TIMEOUT = 6 * 3600.0


def slices(text: str, chars: int) -> list[str]:
    """``text`` cut into pieces of about ``chars`` characters, each ending at a blank line where there is one."""
    if chars <= 0:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = text.find("\n\n", start + chars)
        end = len(text) if end < 0 else end + 2
        pieces.append(text[start:end])
        start = end
    return pieces


def books(count: int, chars: int) -> list[tuple[str, str]]:
    """``count`` (name, text) pairs, slices taken from the benchmark novels in turn."""
    cut = {name: slices(text_path(name).read_text(encoding="utf-8-sig"), chars) for name in NOVELS}
    chosen = []
    for i in range(count):
        name = NOVELS[i % len(NOVELS)]
        piece = i // len(NOVELS)
        chosen.append((f"{Path(name).stem}.{piece}", cut[name][piece % len(cut[name])]))
    return chosen


def run_ours(client: httpx.Client, corpus: list[tuple[str, str]], out: Path) -> float:
    """Submit every book at once, wait for all; wall seconds. Native files land in ``out/<book>/``."""
    started = time.perf_counter()
    jobs = {}
    for name, text in corpus:
        response = client.post("/v1/jobs", json={"text": text, "book_id": "book", "cache": False})
        response.raise_for_status()
        jobs[name] = response.json()["id"]
    deadline = time.monotonic() + JOB_TIMEOUT
    pending = dict(jobs)
    finished_at = started
    while pending and time.monotonic() < deadline:
        for name, job_id in list(pending.items()):
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"{name}: job {job['status']}: {job.get('error')}")
            if job["status"] == "succeeded":
                finished_at = time.perf_counter()
                del pending[name]
        time.sleep(0.2)
    if pending:
        raise RuntimeError(f"jobs not finished in time: {sorted(pending)}")
    for name, job_id in jobs.items():
        native = client.get(f"/v1/jobs/{job_id}/result", params={"format": "native"})
        native.raise_for_status()
        zipfile.ZipFile(io.BytesIO(native.content)).extractall(out / name)
    return finished_at - started


def identical(ours: Path, theirs: Path) -> bool:
    names = {p.name for p in theirs.iterdir()}
    return bool(names) and all((ours / n).is_file() and filecmp.cmp(ours / n, theirs / n, shallow=False)
                               for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "big"], default="small")
    parser.add_argument("--books", type=int, default=10)
    parser.add_argument("--chars", type=int, default=20_000, help="characters per book (0: whole novels)")
    parser.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="WORKERSxTHREADS, e.g. 1x2 2x1")
    parser.add_argument("--upstream-threads", type=int, help="torch threads for upstream (default: torch's)")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    args = parser.parse_args()

    ensure_models(args.models_dir, args.size, seed=0)
    corpus = books(args.books, args.chars)
    work = Path(tempfile.mkdtemp(prefix="booknlp-corpus-"))
    runs = []
    for name, text in corpus:
        (work / "texts").mkdir(exist_ok=True)
        path = work / "texts" / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        runs.append(UpstreamRun(path, args.models_dir / args.size, work / "upstream" / name))
    results = run_upstream_batch(runs, spacy_model=_spacy_model(), cache_dir=args.models_dir / ".hub",
                                 threads=args.upstream_threads)
    failed = [r["error"] for r in results if "error" in r]
    if failed:
        print(failed[0], file=sys.stderr)
        return 1
    upstream_s = sum(r["process_s"] for r in results)
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"{len(corpus)} books of ~{args.chars or 'whole-novel'} characters ({', '.join(n for n, _ in corpus)}), "
          f"{args.size} synthetic models (random weights: output meaningless)")
    label = f"upstream process(), one after another, {args.upstream_threads or 'default'} thread(s)"
    print(f"{label:52}{upstream_s:9.1f} s {3600 * len(corpus) / upstream_s:9.1f} books/h  "
          "(sum of process() calls, model loads excluded)")
    same_all = True
    for layout in args.layouts:
        workers, threads = (int(part) for part in layout.split("x"))
        with tempfile.TemporaryDirectory(prefix="booknlp-corpus-data-") as data, \
                serving(args.models_dir, args.size, Path(data), threads, workers=workers) as client:
            wall = run_ours(client, corpus, work / layout)
        same = all(identical(work / layout / name, work / "upstream" / name) for name, _ in corpus)
        same_all &= same
        print(f"{f'booknlp-api jobs, {workers} worker(s) x {threads} thread(s)':52}{wall:9.1f} s "
              f"{3600 * len(corpus) / wall:9.1f} books/h  {upstream_s / wall:.2f}x upstream; "
              f"native files {'byte-identical' if same else 'DIFFERENT'}")
    return 0 if same_all else 1


def _spacy_model() -> str:
    from booknlp_api.config import resolve_spacy_model

    return resolve_spacy_model(None)


if __name__ == "__main__":
    sys.exit(main())

"""A job's files in the data folder: the submitted text, the run's scratch folder, the published result.

    <data_dir>/texts/<job id>.txt         the text to analyse, UTF-8, until the job finishes
    <data_dir>/work/<job id>.<run>/       where a run writes; never read by anyone else
    <data_dir>/results/<job id>.<run>/    a finished run: native files, result.json, native.zip

A run is published by renaming its work folder into ``results/`` (atomic on one filesystem) and then
recording that folder's name in the job record; the record is the switch, so a result is either
complete or not visible at all, and a job that ran twice keeps exactly one result.
"""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

RESULT_JSON = "result.json"
NATIVE_ZIP = "native.zip"
_NOT_NATIVE = {RESULT_JSON, NATIVE_ZIP}

Body = Path | bytes | Iterator[bytes]
"""A result as served: a file (streamed from disk), bytes, or chunks streamed from the database."""


class JobFiles:
    def __init__(self, data_dir: Path) -> None:
        self.texts = data_dir / "texts"
        self.work = data_dir / "work"
        self.results = data_dir / "results"
        for folder in (self.texts, self.work, self.results):
            folder.mkdir(parents=True, exist_ok=True)

    # -- texts ------------------------------------------------------------------------------------
    def save_text(self, job_id: str, text: str) -> None:
        final = self.texts / f"{job_id}.txt"
        partial = final.with_suffix(".part")
        with partial.open("w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)

    def read_text(self, job_id: str) -> str:
        return (self.texts / f"{job_id}.txt").read_text(encoding="utf-8")

    def delete_text(self, job_id: str) -> None:
        (self.texts / f"{job_id}.txt").unlink(missing_ok=True)

    # -- runs and results ---------------------------------------------------------------------------
    def new_run(self, job_id: str) -> Path:
        folder = self.work / f"{job_id}.{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        return folder

    def publish(self, run: Path) -> str:
        """Move a finished run into ``results/``; the name to record in the job."""
        os.replace(run, self.results / run.name)
        return run.name

    def result(self, name: str) -> Path:
        return self.results / name

    def copy_result(self, source: str, job_id: str, *, with_json: bool) -> str:
        """A cache hit's own copy of an earlier result (hard links: no bytes copied, separate lifetime)."""
        run = self.new_run(job_id)
        for path in self.result(source).iterdir():
            if path.suffix == ".part" or (path.name == RESULT_JSON and not with_json):
                continue
            try:
                os.link(path, run / path.name)
            except OSError:
                shutil.copy2(path, run / path.name)
        return self.publish(run)

    def stored_json(self, name: str) -> Body | None:
        """The run's stored JSON result, None when it has none yet (a cache hit with other sections)."""
        path = self.result(name) / RESULT_JSON
        return path if path.is_file() else None

    def save_json(self, name: str, data: bytes) -> None:
        write_atomically(self.result(name) / RESULT_JSON, data)

    def native_files(self, name: str) -> list[Path]:
        return native_files_in(self.result(name))

    def native_zip(self, name: str) -> Body:
        """BookNLP's native files zipped, built on first request and kept with the result."""
        final = self.result(name) / NATIVE_ZIP
        if not final.is_file():
            partial = final.with_name(f"{NATIVE_ZIP}.{uuid.uuid4().hex[:8]}.part")
            zip_files(self.native_files(name), partial)
            os.replace(partial, final)
        return final

    def delete_result(self, name: str) -> None:
        shutil.rmtree(self.result(name), ignore_errors=True)

    def discard_run(self, run: Path) -> None:
        shutil.rmtree(run, ignore_errors=True)

    def drop_other_runs(self, job_id: str, keep: str) -> None:
        """Remove every other run of this job: a re-run replaces, never duplicates."""
        for folder in (self.work, self.results):
            for entry in folder.glob(f"{job_id}.*"):
                # "<keep>.<uuid>.part": the kept run being unpacked for a reader who saw the job succeed
                if entry.name != keep and not entry.name.startswith(f"{keep}."):
                    shutil.rmtree(entry, ignore_errors=True)

    # -- upkeep -------------------------------------------------------------------------------------
    def sweep(self, *, keep_results: set[str], live_jobs: set[str], min_age: float, now: float) -> int:
        """Delete files no job refers to (left by a crash) once older than ``min_age``; how many went.

        ``live_jobs`` (queued or running) keep all their files; read it before ``keep_results``, so a
        job finishing in between is kept by one or the other.
        """
        gone = 0
        for folder in (self.results, self.work, self.texts):
            for entry in folder.iterdir():
                job_id = entry.name.split(".")[0]
                if job_id in live_jobs or entry.name in keep_results or now - _mtime(entry, now) < min_age:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                gone += 1
        return gone


def _mtime(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile by another process's sweep
        return default


def native_files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in _NOT_NATIVE and p.suffix != ".part")


def zip_files(paths: list[Path], archive_path: Path) -> None:
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in paths:
            archive.write(path, path.name)


def write_atomically(final: Path, data: bytes) -> None:
    """Readers see the whole file or none of it."""
    partial = final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}.part")
    partial.write_bytes(data)
    os.replace(partial, final)

"""A finished job's result in the three forms clients ask for: typed JSON, BookNLP's native files, HTML."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from booknlp_api.engine.result import build_result, sections_produced
from booknlp_api.engine.result_schema import SECTIONS
from booknlp_api.jobs.errors import FormatNotProduced, JobNotFinished, ResultExpired
from booknlp_api.jobs.files import RESULT_JSON, Body, JobFiles, write_atomically
from booknlp_api.jobs.records import AnalysisInfo, Job


def chosen_sections(job: Job, sections: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Sections to return: produced by the pipeline, kept by the job, asked for now, not excluded."""
    produced = set(sections_produced(job.pipeline))
    kept = set(job.sections) if job.sections is not None else produced
    asked = set(sections) if sections is not None else produced
    return tuple(s for s in SECTIONS if s in produced & kept & asked and s not in set(exclude))


def result_json(folder: Path, book_id: str, info: AnalysisInfo, sections: Iterable[str]) -> bytes:
    """The typed result of the run in ``folder``, with these sections, as JSON."""
    result = build_result(folder, book_id, model=info.model, pipeline=info.pipeline, device=info.device,
                          timings=info.timings, synthetic_models=info.synthetic_models,
                          token_count=info.token_count, sections=sections, precision=info.precision)
    return result.model_dump_json().encode()


def store_result_json(folder: Path, book_id: str, info: AnalysisInfo, sections: Iterable[str]) -> Path:
    """Write the job's own result once, so that every fetch of it is a stream."""
    final = folder / RESULT_JSON
    write_atomically(final, result_json(folder, book_id, info, sections))
    return final


class JobResults:
    def __init__(self, files: JobFiles) -> None:
        self.files = files

    def json(self, job: Job, sections: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> Body:
        """The job's stored result (streamed as is), or a narrower one built from the native files."""
        name = self._name(job)
        info = job.analysis
        assert info is not None, "a succeeded job records its analysis"
        chosen = chosen_sections(job, sections, exclude)
        if chosen != chosen_sections(job):
            return result_json(self.files.result(name), job.book_id, info, chosen)
        stored = self.files.stored_json(name)
        if stored is not None:
            return stored
        # A cache hit with other sections than its source's gets its own stored result on first fetch.
        data = result_json(self.files.result(name), job.book_id, info, chosen)
        self.files.save_json(name, data)
        return data

    def native_zip(self, job: Job) -> Body:
        return self.files.native_zip(self._name(job))

    def html(self, job: Job) -> Path:
        path = self.files.result(self._name(job)) / f"{job.book_id}.book.html"
        if not path.is_file():
            raise FormatNotProduced(job, "HTML report", "the quote and coref pipes")
        return path

    def _name(self, job: Job) -> str:
        if job.status != "succeeded":
            raise JobNotFinished(job)
        if job.expired or job.result_dir is None or (job.expires_at is not None and job.expires_at <= time.time()):
            raise ResultExpired(job)
        return job.result_dir

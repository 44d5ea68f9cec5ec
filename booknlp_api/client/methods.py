"""The client's methods, once for both clients: each builds a flow and hands it to the client's ``_drive``.

``Client._drive`` runs a flow to its end and returns its value; ``AsyncClient._drive`` is a coroutine, so on
the async client every method returns an awaitable of the type annotated here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from booknlp_api.api.batch_schemas import BatchesPublic, BatchPublic
from booknlp_api.api.job_schemas import JobPublic, JobsPublic
from booknlp_api.api.schemas import InfoPublic, ReadyPublic
from booknlp_api.client import calls, flows
from booknlp_api.client.calls import Call, Destination, ResultFormat, Source
from booknlp_api.client.connection import Connection
from booknlp_api.engine.result_schema import AnalysisResult

T = TypeVar("T")


class ServiceMethods:
    connection: Connection

    def _drive(self, flow: flows.Flow[T]) -> T:
        raise NotImplementedError

    def analyze(self, text: str, *, wait_timeout: float | None = None, **options: Any) -> AnalysisResult:
        """Analyse a short text now (``POST /v1/analyze``); options as in the API (model, pipeline, sections,
        exclude, precision, cache, book_id). If the service answers 202 (not done in time), waits for the job."""
        return self._drive(flows.analyze(text, options, poll=1.0, timeout=wait_timeout, **self._policy()))

    def submit(self, source: Source, *, idempotency_key: str | None = None, **options: Any) -> JobPublic:
        """A job for a whole book: a ``str`` is the text itself; ``bytes`` or a path (``pathlib.Path``) are
        uploaded (gzipped). Options as in the API, plus ``strip_gutenberg``."""
        return self._one(calls.submit(source, options, idempotency_key))

    def job(self, job: JobPublic | str) -> JobPublic:
        """The job's status and progress now."""
        return self._one(calls.job(calls.job_id_of(job)))

    def wait(self, job: JobPublic | str, *, progress: bool = False, poll: float = 2.0,
             timeout: float | None = None) -> JobPublic:
        """Until the job ends; ``progress=True`` draws a tqdm bar. Raises ``JobFailed`` unless it succeeded."""
        return self._drive(flows.wait(calls.job_id_of(job), poll=poll, timeout=timeout, progress=progress,
                                      **self._policy()))

    def result(self, job: JobPublic | str, format: ResultFormat = "json", *, sections: list[str] | None = None,
               exclude: list[str] | None = None) -> AnalysisResult | bytes | str:
        """``json``: an ``AnalysisResult``; ``native``: the zip of BookNLP's own files (bytes); ``html``: its page."""
        return self._one(calls.result(calls.job_id_of(job), format, sections, exclude))

    def download(self, job: JobPublic | str, into: Destination, format: ResultFormat = "json", *,
                 sections: list[str] | None = None, exclude: list[str] | None = None) -> Destination:
        """The result streamed into ``into`` (a path, or an open binary file) exactly as the server sent it; a path
        appears only once the whole body has arrived. Returns ``into``."""
        return self._one(calls.download(calls.job_id_of(job), into, format, sections, exclude))

    def cancel(self, job: JobPublic | str) -> JobPublic:
        """Cancel a queued job, or ask a running one to stop at its next stage or batch."""
        return self._one(calls.cancel(calls.job_id_of(job)))

    def jobs(self, status: str | None = None, *, limit: int = 20, offset: int = 0) -> JobsPublic:
        """This key's jobs, newest first, a page at a time."""
        return self._one(calls.jobs(status, limit, offset))

    def submit_batch(self, sources: Source | Sequence[Source | tuple[str, bytes]], *,
                     idempotency_key: str | None = None, **options: Any) -> BatchPublic:
        """One job per book (``POST /v1/batches``): book files or ``.zip``/``.tar.gz`` archives of books (paths, as
        ``Path`` or ``str``), or ``(name, bytes)`` pairs. Options as for ``submit`` (a book's id is its file name)."""
        many = [sources] if isinstance(sources, str | bytes | os.PathLike) else list(sources)
        return self._one(calls.submit_batch(many, options, idempotency_key))

    def batch(self, batch: BatchPublic | str) -> BatchPublic:
        """The batch's counts, progress, ETA and jobs now."""
        return self._one(calls.batch(calls.batch_id_of(batch)))

    def batches(self, *, limit: int = 20, offset: int = 0) -> BatchesPublic:
        """This key's batches (an admin key: all), newest first, a page at a time: counts, progress, ETA (no jobs)."""
        return self._one(calls.batches(limit, offset))

    def wait_batch(self, batch: BatchPublic | str, *, progress: bool = False, poll: float = 2.0,
                   timeout: float | None = None) -> BatchPublic:
        """Until every job of the batch has ended; ``progress=True`` draws a tqdm bar. Does not raise for failed
        books: look at ``counts`` and each job's status."""
        return self._drive(flows.wait_batch(calls.batch_id_of(batch), poll=poll, timeout=timeout,
                                            progress=progress, **self._policy()))

    def batch_result(self, batch: BatchPublic | str, format: Literal["zip", "csv"] = "zip") -> bytes | str:
        """``zip``: every book's native files and JSON, and batch.csv (bytes); ``csv``: the corpus table (str)."""
        return self._one(calls.batch_result(calls.batch_id_of(batch), format))

    def download_batch(self, batch: BatchPublic | str, into: Destination,
                       format: Literal["zip", "csv"] = "zip") -> Destination:
        """The batch's results zip or corpus table streamed into ``into``, as ``download`` does."""
        return self._one(calls.download_batch(calls.batch_id_of(batch), into, format))

    def cancel_batch(self, batch: BatchPublic | str) -> BatchPublic:
        """Cancel every job of the batch that has not ended."""
        return self._one(calls.cancel_batch(calls.batch_id_of(batch)))

    def info(self) -> InfoPublic:
        return self._one(calls.info())

    def ready(self) -> ReadyPublic:
        return self._one(calls.ready())

    def _policy(self) -> dict[str, Any]:
        return {"max_retries": self.connection.max_retries, "backoff": self.connection.backoff}

    def _one(self, call: Call[T]) -> T:
        return self._drive(flows.send(call, **self._policy()))

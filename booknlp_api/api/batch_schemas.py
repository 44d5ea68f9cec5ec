"""What the batch routes answer: a batch's counts, overall progress and ETA, and its books' jobs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from booknlp_api.api.job_schemas import JobPublic
from booknlp_api.vocabulary import JOB_STATUSES

if TYPE_CHECKING:  # the client imports these schemas: keep the job store (and torch) out of its imports
    from booknlp_api.jobs.batches import Batch
    from booknlp_api.jobs.service import JobService


class BatchLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    result: str = Field(description="The results as one zip (each book's native files and JSON).")
    table: str = Field(description="The corpus table (CSV): one row per book.")


class BatchBookPublic(BaseModel):
    name: str = Field(description="The book's name in the batch: its file name without extension.")
    job: JobPublic


class BatchPublic(BaseModel):
    """A batch: one job per book, counted by status, with overall progress."""

    id: str
    created_at: datetime
    books: int
    counts: dict[str, int] = Field(description="Jobs by status (every status listed, zeros included).")
    finished: bool = Field(description="True once every job has ended (succeeded, failed or cancelled).")
    fraction: float = Field(description="Overall progress, 0 to 1, weighted by each book's length in characters.")
    eta_seconds: float | None = Field(
        description="Estimated seconds until every job has ended, from the running jobs' pace and the characters "
                    "still waiting; null while no running job has an estimate.")
    jobs: list[BatchBookPublic]
    links: BatchLinks

    @classmethod
    def of(cls, batch: Batch, jobs: JobService) -> BatchPublic:
        counts = dict.fromkeys(JOB_STATUSES, 0)
        done_chars, total_chars, waiting_chars, pace = 0.0, 0, 0, 0.0
        etas: list[float] = []
        for job in (book.job for book in batch.books):
            counts[job.status] += 1
            total_chars += job.text_chars
            progress = job.progress or {}
            fraction = 1.0 if job.finished else float(progress.get("fraction") or 0.0)
            done_chars += fraction * job.text_chars
            if job.status == "queued":
                waiting_chars += job.text_chars
            elif job.status == "running" and progress.get("eta_seconds") is not None:
                etas.append(float(progress["eta_seconds"]))
                pace += (1 - fraction) * job.text_chars / max(etas[-1], 1.0)  # characters per second
        eta: float | None = None
        if etas:
            # The running jobs end by their own estimates; the queued characters follow at their combined pace.
            eta = round(max(etas) + (waiting_chars / pace if pace else 0.0), 1)
        elif not counts["queued"] and not counts["running"]:
            eta = 0.0
        path = f"/v1/batches/{batch.id}"
        return cls(id=batch.id, created_at=datetime.fromtimestamp(batch.created_at, timezone.utc),
                   books=len(batch.books), counts=counts, finished=batch.finished,
                   fraction=round(done_chars / total_chars, 4) if total_chars else 1.0, eta_seconds=eta,
                   jobs=[BatchBookPublic(name=b.name, job=JobPublic.of(b.job, jobs.position(b.job)))
                         for b in batch.books],
                   links=BatchLinks(self_=path, result=f"{path}/result", table=f"{path}/result?format=csv"))

"""What the batch routes answer: a batch's counts, overall progress and ETA, and its books' jobs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

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


class BatchSummary(BaseModel):
    """A batch: one job per book, counted by status, with overall progress."""

    id: str
    created_at: datetime
    books: int
    counts: dict[str, int] = Field(description="Jobs by status (every status listed, zeros included). `waiting`: "
                                               "books held back while the key has its jobs at once queued or "
                                               "running; they are queued as its earlier jobs end.")
    finished: bool = Field(description="True once every job has ended (succeeded, failed or cancelled).")
    fraction: float = Field(description="Overall progress, 0 to 1, weighted by each book's length in characters.")
    eta_seconds: float | None = Field(
        description="Estimated seconds until every job has ended, from the running jobs' pace and the characters "
                    "still waiting or queued; null while no running job has an estimate.")
    links: BatchLinks

    @classmethod
    def of(cls, batch: Batch, jobs: JobService) -> BatchSummary:
        return cls(**_summary(batch))


class BatchPublic(BatchSummary):
    """A batch: one job per book, counted by status, with overall progress, and every book's job."""

    jobs: list[BatchBookPublic]

    @classmethod
    def of(cls, batch: Batch, jobs: JobService) -> BatchPublic:
        return cls(**_summary(batch), jobs=[BatchBookPublic(name=b.name, job=JobPublic.of(b.job, jobs.position(b.job)))
                                            for b in batch.books])


class BatchesPublic(BaseModel):
    batches: list[BatchSummary] = Field(description="Newest first; each batch's jobs are at its `links.self`.")
    total: int = Field(description="Batches on all pages.")
    limit: int
    offset: int


def _summary(batch: Batch) -> dict[str, Any]:
    counts = dict.fromkeys(JOB_STATUSES, 0)
    done_chars, total_chars, waiting_chars, pace = 0.0, 0, 0, 0.0
    etas: list[float] = []
    for job in (book.job for book in batch.books):
        counts[job.status] += 1
        total_chars += job.text_chars
        progress = job.progress or {}
        fraction = 1.0 if job.finished else float(progress.get("fraction") or 0.0)
        done_chars += fraction * job.text_chars
        if job.status in ("waiting", "queued"):
            waiting_chars += job.text_chars
        elif job.status == "running" and progress.get("eta_seconds") is not None:
            etas.append(float(progress["eta_seconds"]))
            pace += (1 - fraction) * job.text_chars / max(etas[-1], 1.0)  # characters per second
    eta: float | None = None
    if etas:
        # The running jobs end by their own estimates; the waiting characters follow at their combined pace.
        eta = round(max(etas) + (waiting_chars / pace if pace else 0.0), 1)
    elif batch.finished:
        eta = 0.0
    path = f"/v1/batches/{batch.id}"
    return {"id": batch.id, "created_at": datetime.fromtimestamp(batch.created_at, timezone.utc),
            "books": len(batch.books), "counts": counts, "finished": batch.finished,
            "fraction": round(done_chars / total_chars, 4) if total_chars else 1.0, "eta_seconds": eta,
            "links": BatchLinks(self_=path, result=f"{path}/result", table=f"{path}/result?format=csv")}

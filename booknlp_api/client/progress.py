"""A tqdm bar that follows a job's progress as the service reports it (stage names, overall fraction)."""

from __future__ import annotations

from tqdm import tqdm

from booknlp_api.api.batch_schemas import BatchPublic
from booknlp_api.api.job_schemas import JobPublic


class JobBar:
    """Percent done with the running stage as its label; does nothing when disabled."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self._bar = tqdm(total=100, unit="%", desc=label[:12], disable=not enabled, leave=True,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")

    def update(self, job: JobPublic) -> None:
        if job.progress is not None:
            self._bar.n = round(100 * job.progress.fraction)
            self._bar.set_postfix_str(job.progress.stage or job.status, refresh=False)
        else:
            self._bar.set_postfix_str(job.status if job.queue_position is None
                                      else f"queued #{job.queue_position}", refresh=False)
        if job.status == "succeeded":
            self._bar.n = 100
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class BatchBar(JobBar):
    """A batch's overall percent, with its books counted by status as the label."""

    def update(self, batch: BatchPublic) -> None:  # type: ignore[override]
        self._bar.n = round(100 * batch.fraction)
        counts = ", ".join(f"{n} {status}" for status, n in batch.counts.items() if n)
        self._bar.set_postfix_str(counts, refresh=False)
        self._bar.refresh()

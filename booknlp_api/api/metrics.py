"""``GET /metrics`` in the Prometheus text format, open like the probes (it reveals no book), and the HTTP metrics.

Requests are counted by method, route *template* (``/v1/jobs/{job_id}``, never a job id) and status, with a
latency histogram. A scrape reads every process's values when ``serve`` shares them through files
(``jobs/metrics_files.py``: the worker processes' job metrics come from there), else this process's own;
the queue, running jobs and worker processes by state are read from the job store at scrape time.

A scrape never fails for the database: while it is unreachable (a PostgreSQL restart, a network cut) or its
read takes longer than ``STORE_READ_SECONDS``, ``/metrics`` still answers 200 with the process metrics and
``booknlp_database_up 0``, without the store's gauges (a stale or zero queue depth would mislead an autoscaler).
One thread reads the store; while a read hangs, later scrapes do not start another (no pile-up of threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as ReadTimeout
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booknlp_api.jobs.errors import DatabaseUnavailable
from booknlp_api.jobs.metrics_files import shared
from booknlp_api.jobs.service import JobService

log = logging.getLogger(__name__)

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WORKER_STATES = ("loading", "ready", "failed")
STORE_READ_SECONDS = 3.0
"""How long a scrape waits for the store's gauges: well under Prometheus's default scrape timeout (10 s)."""

HTTP_REQUESTS = Counter("booknlp_http_requests_total", "HTTP requests answered, by method, route template and "
                        "status.", ["method", "route", "status"])
HTTP_SECONDS = Histogram("booknlp_http_request_duration_seconds", "Time to answer HTTP requests, by method and "
                         "route template.", ["method", "route"], buckets=HTTP_BUCKETS)


class HttpMetrics:
    """Counts and times every request; a route that matched nothing is ``unmatched`` (no raw paths as labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class StoreGauges:
    queued: int
    oldest: float | None
    running: int
    worker_states: list[str]


def read_gauges(jobs: JobService) -> StoreGauges:
    queued, oldest, running = jobs.store.queue_summary()
    return StoreGauges(queued, oldest, running, [worker.state for worker in jobs.live_workers()])


def _settle(future: Future[StoreGauges], jobs: JobService) -> None:
    try:
        future.set_result(read_gauges(jobs))
    except BaseException as exc:  # handed to the scrape that waits on it
        future.set_exception(exc)


class JobStoreCollector(Collector):
    """Gauges read from the job store when scraped, so they hold whichever process changed the jobs."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._pending: Future[StoreGauges] | None = None

    def _read(self, jobs: JobService) -> StoreGauges | None:
        """The store's gauges, or None when the database cannot answer within ``STORE_READ_SECONDS``."""
        if self._pending is not None and not self._pending.done():
            log.warning("metrics: the previous read of the job database still hangs; reporting it down")
            return None
        pending = self._pending = Future()
        # A daemon thread: a read hung on a dead network never holds up the process's exit.
        threading.Thread(target=_settle, args=(pending, jobs), name="metrics-store-read", daemon=True).start()
        try:
            return pending.result(timeout=STORE_READ_SECONDS)
        except DatabaseUnavailable:
            log.warning("metrics: the job database is unavailable; reporting it down")
        except ReadTimeout:
            log.warning("metrics: the job database did not answer within %.0f s; reporting it down",
                        STORE_READ_SECONDS)
        except Exception:  # a scrape still answers (process metrics matter most then); the log says why
            log.exception("metrics: reading the job database failed; reporting it down")
        return None

    def collect(self) -> Iterable[Metric]:
        runtime = getattr(self.app.state, "runtime", None)
        if runtime is None:  # not started yet, or stopped
            return
        gauges = self._read(runtime.jobs)
        yield GaugeMetricFamily("booknlp_database_up", "1 when this API process read the job database for this "
                                "scrape; 0 when it could not (the store's gauges are then left out).",
                                value=0 if gauges is None else 1)
        if gauges is None:
            return
        yield GaugeMetricFamily("booknlp_queue_depth", "Jobs waiting to run.", value=gauges.queued)
        yield GaugeMetricFamily("booknlp_queue_oldest_age_seconds", "Age of the oldest job waiting to run (0: none).",
                                value=0.0 if gauges.oldest is None else max(0.0, time.time() - gauges.oldest))
        yield GaugeMetricFamily("booknlp_jobs_running", "Jobs a worker is running now.", value=gauges.running)
        workers = GaugeMetricFamily("booknlp_workers", "Worker processes heard from within the lease, by state.",
                                    labels=["state"])
        for state in WORKER_STATES:
            workers.add_metric([state], gauges.worker_states.count(state))
        yield workers


def install_metrics(app: FastAPI) -> None:
    """The HTTP metrics middleware and ``GET /metrics`` (outside the OpenAPI contract: it is not JSON)."""
    app.add_middleware(HttpMetrics)
    store_registry = CollectorRegistry(auto_describe=True)
    store_registry.register(JobStoreCollector(app))

    def scrape() -> bytes:
        if shared():
            processes = CollectorRegistry()
            MultiProcessCollector(processes)
            return generate_latest(processes) + generate_latest(store_registry)
        return generate_latest(REGISTRY) + generate_latest(store_registry)

    async def metrics(_: Request) -> Response:
        return Response(await run_in_threadpool(scrape), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)

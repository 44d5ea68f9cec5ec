"""``GET /metrics`` in the Prometheus text format, open like the probes (it reveals no book), and the HTTP metrics.

Requests are counted by method, route *template* (``/v1/jobs/{job_id}``, never a job id) and status, with a
latency histogram. A scrape reads every process's values when ``serve`` shares them through files
(``jobs/metrics_files.py``: the worker processes' job metrics come from there), else this process's own;
the queue, running jobs and worker processes by state are read from the job store at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booknlp_api.jobs.metrics_files import shared
from booknlp_api.jobs.service import JobService

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WORKER_STATES = ("loading", "ready", "failed")

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


class JobStoreCollector(Collector):
    """Gauges read from the job store when scraped, so they hold whichever process changed the jobs."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        runtime = getattr(self.app.state, "runtime", None)
        if runtime is None:  # not started yet, or stopped
            return
        jobs: JobService = runtime.jobs
        queued, oldest, running = jobs.store.queue_summary()
        yield GaugeMetricFamily("booknlp_queue_depth", "Jobs waiting to run.", value=queued)
        yield GaugeMetricFamily("booknlp_queue_oldest_age_seconds", "Age of the oldest job waiting to run (0: none).",
                                value=0.0 if oldest is None else max(0.0, time.time() - oldest))
        yield GaugeMetricFamily("booknlp_jobs_running", "Jobs a worker is running now.", value=running)
        workers = GaugeMetricFamily("booknlp_workers", "Worker processes heard from within the lease, by state.",
                                    labels=["state"])
        states = [worker.state for worker in jobs.live_workers()]
        for state in WORKER_STATES:
            workers.add_metric([state], states.count(state))
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

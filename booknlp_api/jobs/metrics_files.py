"""Prometheus multiprocess mode: where the API and worker processes of one service write their metric values.

prometheus-client picks in-memory or file-backed values when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``; so ``serve`` calls ``share_metrics`` before anything imports it, starting
from an empty folder, and the worker processes it starts inherit the variable. A worker that exits has
its live gauges dropped (``process_gone``); its counters and histograms stay, as they should.

Files are named by process id, so only processes of one pid namespace may share the folder: a
``booknlp-api worker`` started on its own (``BOOKNLP_WORKERS=0``, perhaps in another container on the
same volume, where its pid could equal the API's) keeps its metrics in memory, or, given
``BOOKNLP_WORKER_METRICS_PORT``, in a private temporary folder that it and the worker processes it starts
(one per device) share, served on that port (``serve_metrics``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(data_dir: Path) -> Path:
    return data_dir / "metrics"


def share_metrics(data_dir: Path) -> Path:
    """Make this process (and the processes it starts) write metrics to files in an empty ``data_dir/metrics``."""
    folder = metrics_dir(data_dir)
    shutil.rmtree(folder, ignore_errors=True)  # values of processes from an earlier run
    folder.mkdir(parents=True, exist_ok=True)
    return share_metrics_in(folder)


def share_metrics_in(folder: Path) -> Path:
    """Like ``share_metrics``, in an empty folder of the caller's (a standalone worker's temporary one)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was chosen")
    os.environ[ENV] = str(folder)
    return folder


def serve_metrics(port: int) -> None:
    """Serve every process's values from the shared folder on ``port`` (a thread; GET any path, /metrics too)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    processes = CollectorRegistry()
    MultiProcessCollector(processes)
    start_http_server(port, addr="0.0.0.0", registry=processes)  # scraped from other machines


def shared() -> bool:
    return bool(os.environ.get(ENV))


def process_gone(pid: int) -> None:
    """Drop the live gauges of a process that exited (its GPU memory is no longer held)."""
    if shared():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)

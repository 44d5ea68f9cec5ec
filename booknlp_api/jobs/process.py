"""A worker process: the engine and one ``JobWorker``, apart from the API so analyses never stall its event loop.

spaCy's parse of a book holds the GIL for a second or more; in its own process that blocks nobody
else. The process registers in the store as 'loading' (heartbeats start before the slow model
load), then 'ready' with its device and models, or 'failed' with the error, which readiness reports.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

from booknlp_api.config import Settings
from booknlp_api.device import pin_device
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs import metrics
from booknlp_api.jobs.service import JobService
from booknlp_api.logs import set_worker_id

log = logging.getLogger(__name__)

EXIT_LOAD_FAILED = 3
"""Exit status when the models cannot load: restarting would fail the same way."""
PARENT_POLL_SECONDS = 0.5
"""How often a worker started by the API checks that the API process still exists."""


def run_worker(settings: Settings, *, exit_with_parent: bool = False) -> int:
    """Run jobs until SIGTERM/SIGINT (or, if asked, the parent process dying); the exit status."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    engine = NLPService(settings)
    pin_device(engine.device)
    worker = JobService(settings, engine).new_worker()
    set_worker_id(worker.record.id)
    # The device is known before the slow model load: readiness lists loading and failed workers with theirs.
    worker.record = replace(worker.record, device=asdict(engine.device_info()))
    worker.register()
    try:
        if settings.preload:
            load_off_main_thread(engine)
        # The models live as long as the process: keep them out of full garbage collections, which
        # would otherwise traverse them all (~0.5 s) whenever an analysis allocates enough to trigger one.
        gc.freeze()
    except Exception as exc:
        log.exception("loading the default model failed")
        worker.failed(f"{type(exc).__name__}: {exc}")
        return EXIT_LOAD_FAILED
    worker.store.set_worker_state(worker.record.id, "ready", device=asdict(engine.device_info()),
                                  models=loaded_models(engine))
    metrics.gpu_memory(engine.device_info())
    worker.start()
    log.info("worker %s ready", worker.record.id)
    while not stop.wait(PARENT_POLL_SECONDS):
        if exit_with_parent and os.getppid() != parent:
            # The API process was killed outright (no SIGTERM reached us): do not run on as an orphan.
            log.warning("worker %s: the process that started it is gone; stopping", worker.record.id)
            break
    worker.stop(settings.shutdown_grace_seconds)
    return 0


def load_off_main_thread(engine: NLPService) -> None:
    """``engine.load()`` on a thread of its own; its exceptions are raised here.

    Why: once the main thread has run a parallel torch operation, the ones other threads start are several
    times slower (OpenMP; measured on 2 cores: an LSTM 54 -> 170 ms, a warm 1,000-word analysis 0.9 ->
    1.4-1.9 s), and every analysis runs on the worker's job thread. So the main thread runs none.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="model-load") as loader:
        loader.submit(engine.load).result()


def loaded_models(engine: NLPService) -> list[dict[str, Any]]:
    return [{"name": name, "components": list(parts.loaded()), "synthetic": parts.manifest.synthetic,
             "seed": parts.manifest.seed, "source": parts.manifest.source, "load_seconds": dict(parts.load_seconds)}
            for name, parts in engine.loaded_models().items()]

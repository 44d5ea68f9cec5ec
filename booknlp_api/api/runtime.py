"""What the app holds while it runs: the engine, the job service (queue and worker), and the start-up model loading."""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from booknlp_api.api.schemas import Versions
from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.service import JobService

log = logging.getLogger(__name__)

WarmupState = Literal["loading", "ready", "failed"]


class Warmup:
    """Loads the default model once, on a background thread, so the server answers probes meanwhile.

    A failed load is remembered (readiness reports it); the process keeps serving.
    """

    def __init__(self, load: Callable[[], object], *, enabled: bool = True) -> None:
        self._load = load
        self.state: WarmupState = "loading" if enabled else "ready"
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="model-warmup", daemon=True)

    def start(self) -> None:
        if self.state == "loading":
            self._thread.start()

    def wait(self, timeout: float | None = None) -> WarmupState:
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.state

    def _run(self) -> None:
        try:
            self._load()
        except Exception as exc:
            log.exception("loading the default model failed")
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "failed"
        else:
            self.state = "ready"


@dataclass
class Runtime:
    settings: Settings
    service: NLPService
    jobs: JobService
    warmup: Warmup
    versions: Versions

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        service = NLPService(settings)
        runtime = cls(settings=settings, service=service, jobs=JobService(settings, service),
                      warmup=Warmup(lambda: _preload(service), enabled=settings.preload),
                      versions=collect_versions(service.spacy_model))
        runtime.warmup.start()
        runtime.jobs.start()
        return runtime

    def stop(self) -> None:
        self.jobs.stop()


def _preload(service: NLPService) -> None:
    service.load()
    # The models live as long as the process: keep them out of full garbage collections, which would
    # otherwise traverse them all (~0.5 s, every thread and the event loop stopped) whenever an analysis
    # allocates enough to trigger one.
    gc.freeze()


def max_body_bytes(settings: Settings) -> int:
    """UTF-8 takes at most 4 bytes a character, a job's text at most max_job_bytes; the rest fits in 64 KiB."""
    return max(4 * settings.max_analyze_chars, settings.max_job_bytes) + 65_536


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_versions(spacy_model: str) -> Versions:
    return Versions(
        booknlp_api=_version("booknlp-api") or "unknown", booknlp=_version("booknlp"), torch=_version("torch"),
        transformers=_version("transformers"), spacy=_version("spacy"), spacy_model=spacy_model,
        spacy_model_version=_version(spacy_model.replace("_", "-")),
    )

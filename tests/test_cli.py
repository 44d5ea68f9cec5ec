"""The command line: analyze writes all six native files and the JSON; bad input is a clean message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from booknlp_api.cli import main
from booknlp_api.engine.precision import FAST
from booknlp_api.models.manifest import read_manifest

CHAPTER = Path(__file__).parent / "fixtures" / "texts" / "dialogue_pride_and_prejudice_ch2.txt"
CLI = Path(sys.executable).with_name("booknlp-api")

UPSTREAM_NOISE = ("pkg_resources", "new embeddings will be initialized", "mean_resizing", "using device")
"""What upstream and its libraries print while being imported and loaded."""


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


def test_models_synthesize_prints_no_library_notices(tiny_models_dir: Path, tmp_path: Path) -> None:
    """transformers' embedding-resize notice (once per process, so checked in a fresh one) stays hidden; the
    files are the seeded ones all the same."""
    done = subprocess.run([str(CLI), "models", "synthesize", "--size", "tiny", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for noise in UPSTREAM_NOISE:
        assert noise not in done.stdout + done.stderr, noise
    made, fixture = read_manifest(tmp_path / "tiny"), read_manifest(tiny_models_dir / "tiny")
    assert {p: f.sha256 for p, f in made.files.items()} == {p: f.sha256 for p, f in fixture.files.items()}


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


@pytest.mark.parametrize("precision", ["exact", "fast"])  # fast: int8's or autocast's notices, per this CPU
def test_analyze_in_a_fresh_process_prints_our_logs_and_none_of_upstreams_noise(
        tiny_models_dir: Path, tmp_path: Path, precision: str) -> None:
    book = tmp_path / "book.txt"
    book.write_text(CHAPTER.read_text(encoding="utf-8")[:2000], encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BOOKNLP_") and key not in ("TRANSFORMERS_VERBOSITY", "PYTHONWARNINGS")}
    env.update(BOOKNLP_MODELS_DIR=str(tiny_models_dir), BOOKNLP_MODEL="tiny", BOOKNLP_LOG_LEVEL="info",
               BOOKNLP_TORCH_THREADS="1")
    done = subprocess.run([str(CLI), "analyze", str(book), "--out", str(tmp_path / "out"), "--quiet",
                           "--precision", precision],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for noise in UPSTREAM_NOISE:
        assert noise not in done.stdout + done.stderr, noise
    # our own logs still show, and nothing but them reaches stderr
    # on a CPU with native bfloat16 fast mode has its own tagger (autocast); elsewhere it shares exact's
    tagger = "fast" if precision == "fast" and FAST.changes_component("entity", torch.device("cpu")) else "exact"
    assert f"loaded tiny/entity ({tagger}) on cpu" in done.stderr
    ours = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ booknlp_api\.")
    assert [line for line in done.stderr.splitlines() if line.strip() and not ours.match(line)] == []
    assert done.stdout.count("\n") == 1 and "tokens" in done.stdout


def test_analyze_precision_is_chosen_on_the_command_line(tiny_env: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "short.txt"
    text.write_text("Emma smiled at Harriet.", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["analyze", str(text), "--out", str(out), "--quiet", "--pipeline", "entity",
                 "--precision", "fast"]) == 0
    assert json.loads((out / "short.json").read_text(encoding="utf-8"))["precision"] == "fast"
    assert "(fast)" in capsys.readouterr().out


def test_compare_prints_every_agreement_and_fails_below_the_minimum(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    header = "COREF\tstart_token\tend_token\tprop\tcat\ttext\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "book.entities").write_text(header + "0\t0\t0\tPROP\tPER\tEmma\n1\t3\t3\tPROP\tPER\tJane\n")
    (tmp_path / "b" / "book.entities").write_text(header + "0\t0\t0\tPROP\tPER\tEmma\n1\t3\t3\tPROP\tLOC\tJane\n")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert "entities_f1\t1.0000" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--min", "0.98"]) == 1
    printed = capsys.readouterr().out
    assert "entities_f1\t0.5000" in printed and "coref_b_cubed_f1\t1.0000" in printed
    assert "lowest\t0.5000" in printed

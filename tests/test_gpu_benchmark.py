"""The GPU benchmark's code paths, in its CPU dry-run mode (no GPU on CI): upstream and our engine in
exact and fast mode, the byte comparison, the agreement report and the figures file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.gpu_benchmark import book_text, main

REPO = Path(__file__).resolve().parents[1]


def test_the_dry_run_compares_with_upstream_and_reports_fast_mode(tiny_models_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    figures = tmp_path / "gpu.json"
    assert main(["--dry-run", "--models-dir", str(tiny_models_dir), "--tokens", "150", "--json", str(figures)]) == 0
    printed = capsys.readouterr().out
    found = json.loads(figures.read_text())
    assert (found["device"], found["size"]) == ("cpu", "tiny")
    assert set(found["runs"]) == {"ours exact", "ours fast", "upstream"}
    assert found["identical"] and all(found["identical"].values()), found["identical"]
    assert found["fast_changes"] == ["BERTs run under float16 autocast"]
    assert set(found["fast_agreement"]) >= {"entities_f1", "quote_speakers", "coref_b_cubed_f1"}
    assert all(0.0 <= value <= 1.0 for value in found["fast_agreement"].values())
    assert found["runs"]["ours exact"]["cuda_max_memory_allocated"] is None  # no CUDA in a dry run
    assert "byte-identical" in printed and "fast vs exact agreement" in printed


def test_the_book_text_joins_the_novels_and_ends_at_a_paragraph(tmp_path: Path) -> None:
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("Para one.\n\nPara two.", encoding="utf-8")
    two.write_text("Para three.", encoding="utf-8")
    text = book_text(10, [one, two])
    assert text.startswith("Para one.\n\nPara two.\n\nPara three.") and text.endswith(".")
    assert len(text) <= 10 * 4.6


def test_without_a_gpu_the_script_refuses_unless_dry_run() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(REPO / ".venv" / "bin" / "python"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([str(REPO / "scripts" / "gpu-benchmark.sh"), "--skip-upstream"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--dry-run" in done.stderr

"""The load script (benchmarks/load.py) in miniature, so that it cannot rot: a few clients for a few seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(900)
def test_the_load_script_runs_and_its_functional_checks_pass(tiny_models_dir: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.load", "--clients", "4", "--seconds", "6",
                          "--models-dir", str(tiny_models_dir), "--size", "tiny", "--greedy-rate", "3/minute"],
                         capture_output=True, text=True, timeout=800, cwd=Path(__file__).resolve().parents[1])
    output = run.stdout + run.stderr
    print(output[-3000:])
    for check in ("no 5xx", "every accepted job ran exactly once and succeeded", "the greedy key got 429s",
                  "the steady key got none", "no transport errors"):
        assert f"PASS: {check}" in output, output[-4000:]
    # Probe latency is a figure, not a test verdict (a shared machine): it is only required to be printed.
    assert "probes: " in output and " p99 " in output, output[-4000:]

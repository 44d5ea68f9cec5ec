"""benchmarks.exact_floor: the kept kernels are told apart from the rest, and a run prints and records
each stage's kernel seconds, the floor and the ceiling it puts on the speed-up over upstream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.exact_floor import KERNELS, kernel_of, main


@pytest.mark.parametrize(("op", "kernel"), [
    ("aten::addmm", "matrix products"), ("aten::bmm", "matrix products"), ("aten::mm", "matrix products"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"), ("aten::mkldnn_rnn_layer", "LSTMs"),
    ("aten::lstm", "LSTMs"), ("aten::gelu", None), ("aten::native_layer_norm", None), ("aten::copy_", None),
])
def test_each_profiled_op_is_a_kept_kernel_or_not(op: str, kernel: str | None) -> None:
    assert kernel_of(op) == kernel


def test_a_run_records_kernel_seconds_per_stage_and_the_ceiling_over_upstream(
        tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = tmp_path / "floor.json"
    assert main(["--size", "tiny", "--models-dir", str(tiny_models_dir), "--chars", "4000", "--upstream",
                 "--json", str(figures)]) == 0
    found = json.loads(figures.read_text())
    stages = set(found["plain_stages"])
    assert {"parse", "tagger", "attribution", "coref"} <= stages == set(found["profiled_stages"])
    # every BERT stage ran its matrix products under the profiler; spaCy's parse runs none of torch's
    assert found["kernels"]["tagger"]["matrix products"] > 0 and found["kernels"]["coref"]["matrix products"] > 0
    assert found["kernels"]["tagger"]["LSTMs"] > 0
    assert sum(found["kernels"]["parse"][kernel] for kernel in KERNELS) == 0
    assert 0 < found["floor_s"] < sum(found["plain_stages"].values())
    assert found["upstream_s"] > 0 and "coref" in found["upstream_stages"]
    printed = capsys.readouterr().out
    assert f"at the floor at most {found['upstream_s'] / found['floor_s']:.2f}x" in printed

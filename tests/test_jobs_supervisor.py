"""The environment the API gives its worker processes: its settings, and the cores split between them."""

from __future__ import annotations

from pathlib import Path

from booknlp_api.config import Settings
from booknlp_api.jobs.supervisor import usable_cpus, worker_env


def test_workers_get_the_settings_and_share_the_cores_when_no_thread_count_is_set(tmp_path: Path) -> None:
    env = worker_env(Settings(data_dir=tmp_path, workers=2))
    assert env["BOOKNLP_DATA_DIR"] == str(tmp_path) and env["BOOKNLP_WORKERS"] == "2"
    assert env["BOOKNLP_TORCH_THREADS"] == str(max(1, usable_cpus() // 2))


def test_a_thread_count_that_is_set_is_passed_on_as_is_and_one_worker_keeps_torchs_default(tmp_path: Path) -> None:
    assert worker_env(Settings(data_dir=tmp_path, workers=2, torch_threads=3))["BOOKNLP_TORCH_THREADS"] == "3"
    assert "BOOKNLP_TORCH_THREADS" not in worker_env(Settings(data_dir=tmp_path, workers=1))

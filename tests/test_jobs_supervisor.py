"""The worker processes a supervisor starts: one per listed device (CUDA mocked: the device plan is the point),
each with its settings as its environment, the cores split between them."""

from __future__ import annotations

import logging
from pathlib import Path
from unittest import mock

import pytest
import torch

from booknlp_api.config import Settings
from booknlp_api.jobs.supervisor import Supervisor, usable_cpus, worker_env, worker_settings


def test_workers_get_the_settings_and_share_the_cores_when_no_thread_count_is_set(tmp_path: Path) -> None:
    env = worker_env(Settings(data_dir=tmp_path, workers=2))
    assert env["BOOKNLP_DATA_DIR"] == str(tmp_path) and env["BOOKNLP_WORKERS"] == "2"
    assert env["BOOKNLP_TORCH_THREADS"] == str(max(1, usable_cpus() // 2))


def test_a_thread_count_that_is_set_is_passed_on_as_is_and_one_worker_keeps_torchs_default(tmp_path: Path) -> None:
    assert worker_env(Settings(data_dir=tmp_path, workers=2, torch_threads=3))["BOOKNLP_TORCH_THREADS"] == "3"
    assert "BOOKNLP_TORCH_THREADS" not in worker_env(Settings(data_dir=tmp_path, workers=1))


def _gpus(count: int) -> mock._patch:  # type: ignore[type-arg]
    return mock.patch.multiple(torch.cuda, is_available=mock.Mock(return_value=count > 0),
                               device_count=mock.Mock(return_value=count))


def test_a_device_list_gives_one_worker_per_device_pinned_to_it_and_the_cores_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, devices="cuda:0,cuda:1", workers=1)
    with _gpus(2):
        slots = Supervisor(settings).slots
    assert [slot.device for slot in slots] == ["cuda:0", "cuda:1"]
    envs = [worker_env(slot, len(slots)) for slot in slots]
    assert [env["BOOKNLP_DEVICE"] for env in envs] == ["cuda:0", "cuda:1"]
    assert all("BOOKNLP_DEVICES" not in env for env in envs), "each child runs one worker, not a device list"
    assert {env["BOOKNLP_TORCH_THREADS"] for env in envs} == {str(max(1, usable_cpus() // 2))}


def test_listed_devices_the_machine_lacks_are_named_and_get_no_worker(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with _gpus(1), caplog.at_level(logging.ERROR):
        slots = worker_settings(Settings(data_dir=tmp_path, devices="cuda:0,cuda:1"), 1)
    assert [slot.device for slot in slots] == ["cuda:0"]
    assert "BOOKNLP_DEVICES names cuda:1 but this machine has 1 CUDA device(s)" in caplog.text


def test_with_none_of_the_listed_devices_the_workers_fall_back_to_the_single_device_setting(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path, devices="all", device="auto", workers=3)
    with _gpus(0), caplog.at_level(logging.ERROR):
        slots = worker_settings(settings, settings.workers)
    assert [(slot.device, slot.devices) for slot in slots] == [("auto", None)] * 3
    assert "BOOKNLP_DEVICES=all but this machine has 0 CUDA device(s)" in caplog.text
    assert "falling back to 3 worker(s) on BOOKNLP_DEVICE=auto" in caplog.text


def test_an_api_only_server_starts_no_worker_whatever_the_device_list_says(tmp_path: Path) -> None:
    with _gpus(2):
        assert Supervisor(Settings(data_dir=tmp_path, devices="all", workers=0)).slots == []

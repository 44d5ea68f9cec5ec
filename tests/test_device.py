"""Device choice and device lists (BOOKNLP_DEVICES), with CUDA mocked: the device logic is the point here."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from pydantic import ValidationError

from booknlp_api.config import Settings
from booknlp_api.device import describe_device, missing_devices_message, pin_device, plan_devices, resolve_device


def _cuda(available: bool, count: int = 1) -> mock._patch:  # type: ignore[type-arg]
    return mock.patch.multiple(torch.cuda, is_available=mock.Mock(return_value=available),
                               device_count=mock.Mock(return_value=count))


@pytest.mark.parametrize(("requested", "available", "count", "expected"), [
    ("auto", True, 1, "cuda:0"),
    ("auto", False, 0, "cpu"),
    ("cpu", True, 1, "cpu"),
    ("cuda", True, 2, "cuda:0"),
    ("cuda:1", True, 2, "cuda:1"),
])
def test_devices_are_chosen_as_asked(requested: str, available: bool, count: int, expected: str) -> None:
    with _cuda(available, count):
        assert str(resolve_device(requested)) == expected


@pytest.mark.parametrize(("requested", "count"), [("cuda", 0), ("cuda:3", 2)])
def test_missing_cuda_falls_back_to_cpu_with_a_warning(requested: str, count: int,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with _cuda(count > 0, count), caplog.at_level(logging.WARNING):
        assert resolve_device(requested) == torch.device("cpu")
    assert requested in caplog.text and "using cpu" in caplog.text


def test_cuda_device_is_described_with_name_and_memory() -> None:
    props = SimpleNamespace(total_memory=150_000_000_000)
    with _cuda(True, 1), mock.patch.multiple(
        torch.cuda, get_device_properties=mock.Mock(return_value=props),
        get_device_name=mock.Mock(return_value="NVIDIA H200"), memory_allocated=mock.Mock(return_value=123),
    ):
        info = describe_device(torch.device("cuda", 0))
    assert (info.device, info.cuda_device_name, info.cuda_memory_total_bytes) == ("cuda:0", "NVIDIA H200",
                                                                                  150_000_000_000)
    assert info.cuda_memory_allocated_bytes == 123


def test_cpu_device_has_no_cuda_details() -> None:
    info = describe_device(torch.device("cpu"))
    assert info.device == "cpu" and info.cuda_device_name is None


@pytest.mark.parametrize(("listed", "count", "present", "missing"), [
    ("cuda:0,cuda:1", 2, ["cuda:0", "cuda:1"], []),
    ("cuda:0,cuda:1", 1, ["cuda:0"], ["cuda:1"]),
    ("cuda:1,cuda:0,cuda:1", 2, ["cuda:1", "cuda:0", "cuda:1"], []),
    ("all", 3, ["cuda:0", "cuda:1", "cuda:2"], []),
    ("all", 0, [], []),
    ("cpu,cuda:0", 0, ["cpu"], ["cuda:0"]),
])
def test_a_device_list_is_split_into_the_devices_this_machine_has_and_those_it_lacks(
        listed: str, count: int, present: list[str], missing: list[str]) -> None:
    with _cuda(count > 0, count):
        plan = plan_devices(listed)
    assert (plan.present, plan.missing, plan.cuda_count) == (present, missing, count)


def test_the_message_about_missing_devices_names_them_and_what_the_machine_has() -> None:
    with _cuda(True, 1):
        message = missing_devices_message("cuda:0,cuda:2,cuda:3", plan_devices("cuda:0,cuda:2,cuda:3"))
    assert message == ("BOOKNLP_DEVICES names cuda:2, cuda:3 but this machine has 1 CUDA device(s) (cuda:0): "
                       "no worker for cuda:2, cuda:3")
    with _cuda(False, 0):
        assert missing_devices_message("all", plan_devices("all")) == \
            "BOOKNLP_DEVICES=all but this machine has 0 CUDA device(s)"
    with _cuda(True, 2):
        assert missing_devices_message("cuda:1", plan_devices("cuda:1")) is None


def test_a_worker_is_pinned_to_its_cuda_device_and_a_cpu_worker_touches_no_cuda() -> None:
    with mock.patch.object(torch.cuda, "set_device") as set_device:
        pin_device(torch.device("cuda", 1))
        pin_device(torch.device("cpu"))
    set_device.assert_called_once_with(torch.device("cuda", 1))


@pytest.mark.parametrize(("given", "kept"), [
    ("cuda:0,cuda:1", "cuda:0,cuda:1"), (" cuda:0 , cpu ", "cuda:0,cpu"), ("all", "all"), ("", None),
])
def test_the_devices_setting_takes_a_list_or_all(given: str, kept: str | None) -> None:
    assert Settings(devices=given).devices == kept


@pytest.mark.parametrize("given", ["cuda", "gpu0", "cuda:0,,cuda:1", "all,cuda:0", "cuda:-1"])
def test_the_devices_setting_refuses_anything_else_naming_the_form(given: str) -> None:
    with pytest.raises(ValidationError, match="cuda:0,cuda:1"):
        Settings(devices=given)

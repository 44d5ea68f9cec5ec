"""Device choice, with CUDA mocked: the device logic is the point here."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from booknlp_api.device import describe_device, resolve_device


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

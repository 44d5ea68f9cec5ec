"""Choosing the torch device once per process: CUDA when asked for and present, else CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    """What `/v1/ready` reports about the device the models run on."""

    device: str
    cuda_available: bool
    cuda_device_name: str | None = None
    cuda_memory_total_bytes: int | None = None
    cuda_memory_allocated_bytes: int | None = None


def resolve_device(requested: str) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a usable device; CUDA that is absent falls back to CPU."""
    if requested == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if requested == "auto":
        return torch.device("cuda:0") if available else torch.device("cpu")
    index = int(requested.split(":", 1)[1]) if ":" in requested else 0
    if not available:
        log.warning("device %s was requested but CUDA is not available; using cpu", requested)
        return torch.device("cpu")
    if index >= torch.cuda.device_count():
        log.warning("device %s was requested but only %d CUDA device(s) exist; using cpu",
                    requested, torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> DeviceInfo:
    available = torch.cuda.is_available()
    if device.type != "cuda":
        return DeviceInfo(device=str(device), cuda_available=available)
    index = device.index or 0
    props = torch.cuda.get_device_properties(index)
    return DeviceInfo(
        device=f"cuda:{index}",
        cuda_available=available,
        cuda_device_name=torch.cuda.get_device_name(index),
        cuda_memory_total_bytes=int(props.total_memory),
        cuda_memory_allocated_bytes=int(torch.cuda.memory_allocated(index)),
    )

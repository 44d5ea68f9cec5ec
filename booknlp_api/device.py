"""Choosing the torch device once per process: CUDA when asked for and present, else CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class DevicePlan:
    """The devices a ``BOOKNLP_DEVICES`` list names, split into those this machine has and those it lacks."""

    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    cuda_count: int = 0


def plan_devices(listed: str) -> DevicePlan:
    """``all`` (every visible CUDA device) or ``cuda:N``/``cpu`` items, comma-separated, in order; a device
    listed twice gets two workers. CUDA devices are counted as torch sees them (``CUDA_VISIBLE_DEVICES``)."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if listed == "all":
        return DevicePlan(present=[f"cuda:{index}" for index in range(count)], cuda_count=count)
    present, missing = [], []
    for item in listed.split(","):
        exists = item == "cpu" or int(item.split(":", 1)[1]) < count
        (present if exists else missing).append(item)
    return DevicePlan(present=present, missing=missing, cuda_count=count)


def missing_devices_message(listed: str, plan: DevicePlan) -> str | None:
    """What to log when ``BOOKNLP_DEVICES`` names devices this machine lacks; None when it has them all."""
    last = plan.cuda_count - 1
    have = f"this machine has {plan.cuda_count} CUDA device(s)" + (
        "" if last < 0 else " (cuda:0)" if last == 0 else f" (cuda:0-cuda:{last})")
    if listed == "all" and not plan.present:
        return f"BOOKNLP_DEVICES=all but {have}"
    if plan.missing:
        return f"BOOKNLP_DEVICES names {', '.join(plan.missing)} but {have}: no worker for {', '.join(plan.missing)}"
    return None


def pin_device(device: torch.device) -> None:
    """Make ``device`` this process's current CUDA device: anything upstream puts on plain "cuda" lands there too."""
    if device.type == "cuda":
        torch.cuda.set_device(device)

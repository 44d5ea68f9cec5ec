"""The engine's one error tree; upstream and torch failures are translated into it at the boundary.

    EngineError
    ├── InvalidText          empty or whitespace-only text             (HTTP 422)
    ├── InvalidPipeline      unknown pipe, or a pipe missing its needs (HTTP 422)
    ├── ModelNotAvailable    no such model folder, or it is incomplete  (HTTP 422)
    ├── Cancelled            the caller asked the run to stop
    └── StageFailed          an upstream stage raised or called sys.exit (names the stage)
        └── DeviceOutOfMemory  CUDA ran out of memory in that stage
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidText(EngineError):
    pass


class InvalidPipeline(EngineError):
    pass


class ModelNotAvailable(EngineError):
    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


class Cancelled(EngineError):
    pass


class StageFailed(EngineError):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage!r} failed: {message}")
        self.stage = stage
        self.detail = message


class DeviceOutOfMemory(StageFailed):
    pass

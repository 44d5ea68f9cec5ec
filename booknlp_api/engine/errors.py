"""The engine's one error tree; upstream and torch failures are translated into it at the boundary.

    EngineError
    ├── InvalidInput         a request that cannot run as given        (HTTP 422)
    │   ├── InvalidText      empty or whitespace-only text
    │   ├── InvalidPipeline  unknown pipe, or a pipe missing its needs
    │   └── ModelNotAvailable  no such model folder, or it is incomplete
    ├── Cancelled            the caller asked the run to stop
    └── StageFailed          an upstream stage raised or called sys.exit (names the stage)
        └── DeviceOutOfMemory  CUDA ran out of memory in that stage
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidInput(EngineError):
    """A request the engine cannot run as given (HTTP 422)."""


class InvalidText(InvalidInput):
    pass


class InvalidPipeline(InvalidInput):
    pass


class ModelNotAvailable(InvalidInput):
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

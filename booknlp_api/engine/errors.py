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

    code = "engine_error"
    """Stable machine-readable reason; the API and job records use it as the error code."""


class InvalidInput(EngineError):
    """A request the engine cannot run as given (HTTP 422)."""

    code = "invalid_input"


class InvalidText(InvalidInput):
    code = "invalid_text"


class InvalidPipeline(InvalidInput):
    code = "invalid_pipeline"


class ModelNotAvailable(InvalidInput):
    code = "model_not_available"

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


class Cancelled(EngineError):
    code = "cancelled"


class StageFailed(EngineError):
    code = "stage_failed"

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage!r} failed: {message}")
        self.stage = stage
        self.detail = message


class DeviceOutOfMemory(StageFailed):
    code = "device_out_of_memory"

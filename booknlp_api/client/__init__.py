"""A Python client for booknlp-api: ``Client`` (blocking) and ``AsyncClient``, on httpx.

They return the server's own pydantic models (``JobPublic``, ``AnalysisResult``...), retry 429 and 503
after ``Retry-After``, and raise one exception tree (:mod:`booknlp_api.client.errors`)::

    from booknlp_api.client import Client
    with Client("http://127.0.0.1:8000", api_key=KEY) as client:
        job = client.submit(Path("emma.txt"))
        client.wait(job, progress=True)
        result = client.result(job)

Names are imported on first use, so the CLI's ``booknlp-api jobs ...`` starts without loading the schemas'
dependencies until a command runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "Client": "sync", "AsyncClient": "asynchronous", "JobPublic": "booknlp_api.api.job_schemas",
    "JobsPublic": "booknlp_api.api.job_schemas",
    "BatchPublic": "booknlp_api.api.batch_schemas", "BatchesPublic": "booknlp_api.api.batch_schemas",
    "AnalysisResult": "booknlp_api.engine.result_schema",
    **{name: "errors" for name in ("AuthenticationFailed", "BookNLPError", "Conflict", "Gone", "InvalidRequest",
                                   "JobFailed", "NotFound", "RateLimited", "ServerError", "Unavailable")},
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _WHERE[name]
    value = getattr(import_module(module if "." in module else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

"""API keys on every route but the probes: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

The routers of the analysis, job and info routes depend on ``authenticate``; the probes, /metrics and
the docs pages do not (they reveal no book). A missing, wrong or revoked key is a 401 with
``WWW-Authenticate``. The key found is the caller: jobs it submits are its own, and only an admin key
sees other keys' jobs. Each authenticated request also counts against the key's request rate (in the job
database by default: a thread), and its response says where the key stands (``api.rate_headers``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from booknlp_api.api.errors import ApiError
from booknlp_api.api.rate_headers import remember
from booknlp_api.api.schemas import ErrorResponse
from booknlp_api.jobs.key_file import KeyFile
from booknlp_api.jobs.keys import ApiKey, KeyStore, hash_key

REALM = "booknlp-api"

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one (`WWW-Authenticate`)."}}

_bearer = HTTPBearer(auto_error=False, description="An API key (`booknlp-api keys create NAME`) as a bearer token.")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same API key, as a header.")


@dataclass(frozen=True)
class Caller:
    """Who sent the request: an API key, or nobody when the service runs with ``BOOKNLP_AUTH=disabled``."""

    key: ApiKey | None

    @property
    def owner(self) -> str | None:
        """The name its new jobs are recorded under."""
        return None if self.key is None else self.key.name

    @property
    def scope(self) -> str | None:
        """The owner whose jobs it may see; None: every job (an admin key, or no auth)."""
        return None if self.key is None or self.key.admin else self.key.name


class Keyring:
    """The keys that open the service: those in the job store and those in the mounted keys file."""

    def __init__(self, store: KeyStore, file: KeyFile | None = None) -> None:
        self.store = store
        self.file = file

    def keys(self) -> list[ApiKey]:
        return self.store.active() + (self.file.keys() if self.file is not None else [])

    def find(self, presented: str) -> ApiKey | None:
        """The key whose hash matches; every candidate is compared in constant time, with no early exit."""
        digest = hash_key(presented)
        found = None
        for key in self.keys():
            if hmac.compare_digest(digest.encode(), key.key_hash.encode()):
                found = key
        return found


def unauthorized(code: str, message: str) -> ApiError:
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if code == "invalid_api_key" else "")
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_api_key_header)],
) -> Caller:
    runtime = request.app.state.runtime
    if runtime.settings.auth == "disabled":
        return Caller(None)
    presented = bearer.credentials if bearer is not None else header_key
    if not presented:
        raise unauthorized("missing_api_key", "this route needs an API key: send `Authorization: Bearer KEY` "
                                              "or `X-API-Key: KEY`")
    key = await run_in_threadpool(runtime.keyring.find, presented)
    if key is None:
        raise unauthorized("invalid_api_key", "the API key is not valid: unknown or revoked")
    remember(request, await run_in_threadpool(runtime.rate_limits.count_request, key))
    return Caller(key)


CallerDep = Annotated[Caller, Depends(authenticate)]

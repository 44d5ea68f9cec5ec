"""What both clients are configured with: where the service is, the key, timeouts and the retry policy."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "BOOKNLP_API_URL"
KEY_VARIABLE = "BOOKNLP_API_KEY"


@dataclass(frozen=True)
class Connection:
    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int
    backoff: float

    @classmethod
    def of(cls, base_url: str | None, api_key: str | None, timeout: float, max_retries: int,
           backoff: float) -> Connection:
        """Arguments first, then ``BOOKNLP_API_URL`` / ``BOOKNLP_API_KEY``, then the local default port."""
        return cls(base_url or os.environ.get(URL_VARIABLE) or DEFAULT_URL,
                   api_key if api_key is not None else os.environ.get(KEY_VARIABLE), timeout, max_retries, backoff)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": "booknlp-api-client"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def httpx_options(self) -> dict[str, object]:
        return {"base_url": self.base_url, "headers": self.headers(),
                "timeout": httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))}

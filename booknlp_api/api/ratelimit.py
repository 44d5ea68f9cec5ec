"""Per-key limits on requests and on characters submitted, counted with the ``limits`` library.

Requests use a moving window (exact: ``Retry-After`` is when the oldest counted request leaves it);
characters a sliding-window counter (a novel costs its length in one counter update, not one entry per
character). The counters live in the job database by default (``rate_limit_storage=database``,
``jobs.rate_counters``): every API process on that database shares a key's quota, and a check-and-count
is atomic across them. Another ``limits`` storage URI (``memory://``: this API process alone) is a
setting away. The third limit, jobs queued or running at once, is counted in the job store
(``JobService.submit``); a batch's books beyond it wait in the store and are queued as the key's
jobs end.

Every authenticated request that was counted carries the ``RateLimit-Policy``/``RateLimit`` headers of
the IETF draft (``"requests";q=60;w=60`` and ``"requests";r=59;t=60``: quota, window, remaining, seconds
until a unit frees); over a limit, 429 with ``Retry-After`` and the same headers (``r=0``).
"""

from __future__ import annotations

import dataclasses
import math
import time

from limits import RateLimitItem, RateLimitItemPerDay, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter

from booknlp_api.api.auth import Caller
from booknlp_api.api.errors import ApiError
from booknlp_api.config import Settings
from booknlp_api.jobs.batches import Admit, Submit
from booknlp_api.jobs.database import Database
from booknlp_api.jobs.keys import ApiKey, KeyLimits
from booknlp_api.jobs.rate_counters import DatabaseRateStorage
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService


class RateLimits:
    def __init__(self, settings: Settings, database: Database | None = None, storage: Storage | None = None) -> None:
        self.defaults = KeyLimits(rate_limit=settings.rate_limit, max_active_jobs=settings.max_active_jobs_per_key,
                                  max_chars_per_day=settings.max_chars_per_day)
        self.storage = storage or _storage(settings.rate_limit_storage, database)
        self._requests = MovingWindowRateLimiter(self.storage)
        self._chars = SlidingWindowCounterRateLimiter(self.storage)

    def of(self, key: ApiKey) -> KeyLimits:
        """The key's limits: its own where it has them, the service's defaults elsewhere."""
        own = key.limits
        return KeyLimits(rate_limit=own.rate_limit or self.defaults.rate_limit,
                         max_active_jobs=own.max_active_jobs or self.defaults.max_active_jobs,
                         max_chars_per_day=own.max_chars_per_day or self.defaults.max_chars_per_day)

    def count_request(self, key: ApiKey) -> dict[str, str]:
        """Count one request of this key (blocking: a thread): its ``RateLimit`` headers; 429 when its rate is spent."""
        rate = self.of(key).rate_limit
        assert rate is not None
        item = parse(rate)
        if not self._requests.hit(item, "requests", key.name):
            raise self._refusal(self._requests, item, key, "requests", 1,
                                f"this key may send {item.amount} requests per {_window(item)}")
        stats = self._requests.get_window_stats(item, "requests", key.name)
        return _headers("requests", item, stats.remaining, max(0, math.ceil(stats.reset_time - time.time())))

    def check_chars(self, key: ApiKey, chars: int) -> RateLimitItem:
        """429 when ``chars`` more characters today would pass the key's daily allowance."""
        item = RateLimitItemPerDay(self.of(key).max_chars_per_day or 1)
        if not self._chars.test(item, "chars", key.name, cost=chars):
            raise self._refusal(self._chars, item, key, "chars", chars,
                                f"this key may submit {item.amount} characters per day; this text has {chars}")
        return item

    def charge_chars(self, key: ApiKey, chars: int) -> None:
        """Count characters of a submission accepted after ``check_chars``."""
        item = RateLimitItemPerDay(self.of(key).max_chars_per_day or 1)
        self._chars.hit(item, "chars", key.name, cost=chars)

    @staticmethod
    def _refusal(limiter: RateLimiter, item: RateLimitItem, key: ApiKey, policy: str, cost: int,
                 message: str) -> ApiError:
        stats = limiter.get_window_stats(item, policy, key.name)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        if cost > item.amount:
            retry_after = item.get_expiry()  # never fits in one window; say when a new one starts at the latest
        headers = {"Retry-After": str(retry_after), **_headers(policy, item, stats.remaining, retry_after)}
        details = {"limit": policy, "quota": item.amount, "window_seconds": item.get_expiry(),
                   "remaining": stats.remaining, "retry_after": retry_after}
        return ApiError(429, "rate_limited", f"{message}; retry in {retry_after} s", details, headers)


def _storage(uri: str, database: Database | None) -> Storage:
    if uri != "database":
        return storage_from_string(uri)
    if database is None:
        raise ValueError("rate_limit_storage=database needs the job database")
    return DatabaseRateStorage(database)


def _headers(policy: str, item: RateLimitItem, remaining: int, reset_in: int) -> dict[str, str]:
    """The IETF draft's headers: the policy (quota, window) and where the caller stands in it."""
    return {"RateLimit-Policy": f'"{policy}";q={item.amount};w={item.get_expiry()}',
            "RateLimit": f'"{policy}";r={remaining};t={reset_in}'}


def _window(item: RateLimitItem) -> str:
    return item.GRANULARITY.name if item.multiples == 1 else f"{item.multiples} {item.GRANULARITY.name}s"


def submit_within_limits(jobs: JobService, limits: RateLimits, caller: Caller,
                         submission: Submission) -> tuple[Job, bool]:
    """Submit as the caller's own job, within its characters per day and jobs at once (blocking: a thread)."""
    if caller.key is None:
        return jobs.submit(submission)
    chars = len(submission.text)
    limits.check_chars(caller.key, chars)
    job, created = jobs.submit(dataclasses.replace(submission, owner=caller.owner),
                               max_active=limits.of(caller.key).max_active_jobs)
    if created:
        limits.charge_chars(caller.key, chars)
    return job, created


def batch_admission(jobs: JobService, limits: RateLimits, caller: Caller) -> Admit:
    """Refuses a whole batch up front when its books would pass the caller's characters per day; else the jobs it
    may have queued or running at once (the service's default without keys), within which its books are queued."""
    def admit(submissions: list[Submission]) -> int:
        if caller.key is None:
            return jobs.settings.max_active_jobs_per_key
        limits.check_chars(caller.key, sum(len(s.text) for s in submissions))
        return limits.of(caller.key).max_active_jobs or 1
    return admit


def batch_submitter(jobs: JobService, limits: RateLimits, caller: Caller) -> Submit:
    """Submits one book of an admitted batch as the caller's job, held to be queued within its jobs at once, and
    counts its characters."""
    def submit(submission: Submission, max_active: int) -> tuple[Job, bool]:
        if caller.key is None:
            return jobs.submit(submission, max_active, held=True)
        job, created = jobs.submit(dataclasses.replace(submission, owner=caller.owner), max_active, held=True)
        if created:
            limits.charge_chars(caller.key, len(submission.text))
        return job, created
    return submit

"""Per-key rate limits counted in the job database, on SQLite and PostgreSQL: atomic, shared, swept, on every response.

Two ``Database`` objects on one database are two engines with their own connections, as two API processes
have: what they count together is what the limits must hold to.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from sqlalchemy import func, select

from booknlp_api.api.app import create_app
from booknlp_api.api.errors import ApiError
from booknlp_api.api.ratelimit import RateLimits
from booknlp_api.config import Settings
from booknlp_api.jobs.database import Database
from booknlp_api.jobs.keys import ApiKey, KeyLimits, KeyStore
from booknlp_api.jobs.rate_counters import DatabaseRateStorage
from booknlp_api.jobs.tables import rate_counters, rate_entries
from tests.conftest import database_setting
from tests.test_api_errors import error_of

THREADS = 8
TRIES = 12
"""Each thread asks this many times: 96 tries for a quota far smaller, all at once."""


@pytest.fixture
def storages(database_url: str) -> Iterator[tuple[DatabaseRateStorage, DatabaseRateStorage]]:
    """Two storages on one database, each with its own engine (as two API processes)."""
    first, second = Database(database_url), Database(database_url)
    yield DatabaseRateStorage(first), DatabaseRateStorage(second)
    first.close()
    second.close()


def _hammer(storages: tuple[DatabaseRateStorage, ...], attempt: object) -> int:
    """Every thread tries TRIES times through one of the storages, together; how many tries were granted."""
    def run(index: int) -> int:
        storage = storages[index % len(storages)]
        return sum(bool(attempt(storage)) for _ in range(TRIES))  # type: ignore[operator]
    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(run, range(THREADS)))


def test_a_moving_window_grants_exactly_its_quota_to_many_processes_at_once(
        storages: tuple[DatabaseRateStorage, DatabaseRateStorage]) -> None:
    item = RateLimitItemPerMinute(25)
    granted = _hammer(storages, lambda s: MovingWindowRateLimiter(s).hit(item, "requests", "shared"))
    assert granted == 25
    assert MovingWindowRateLimiter(storages[1]).get_window_stats(item, "requests", "shared").remaining == 0
    assert MovingWindowRateLimiter(storages[0]).hit(item, "requests", "another key")


def test_a_sliding_window_counter_never_grants_past_its_quota_at_once(
        storages: tuple[DatabaseRateStorage, DatabaseRateStorage]) -> None:
    item = RateLimitItemPerMinute(1000)  # characters: every try costs 70, so 14 fit (980) and the 15th does not
    granted = _hammer(storages, lambda s: SlidingWindowCounterRateLimiter(s).hit(item, "chars", "shared", cost=70))
    assert granted == 14
    stats = SlidingWindowCounterRateLimiter(storages[1]).get_window_stats(item, "chars", "shared")
    assert stats.remaining in (20, 21)  # 21: a minute began meanwhile, and the 980 weigh a hair less than whole
    assert not SlidingWindowCounterRateLimiter(storages[0]).hit(item, "chars", "shared", cost=70)


def test_the_moving_window_frees_units_as_hits_leave_it_and_says_when(
        storages: tuple[DatabaseRateStorage, DatabaseRateStorage]) -> None:
    first, second = (MovingWindowRateLimiter(s) for s in storages)
    item = RateLimitItemPerSecond(3, 2)
    start = time.time()
    assert [first.hit(item, "k"), second.hit(item, "k"), first.hit(item, "k"), second.hit(item, "k")] == [
        True, True, True, False]
    counted = time.time()
    reset = second.get_window_stats(item, "k").reset_time
    assert start + 2 <= reset <= counted + 2  # when the oldest of the three leaves the window
    time.sleep(max(0.0, counted + 2 - time.time()) + 0.05)  # the window itself: all three have left it then
    assert [second.hit(item, "k"), first.hit(item, "k"), second.hit(item, "k"), first.hit(item, "k")] == [
        True, True, True, False]
    assert storages[0].sweep(time.time()) == 3  # the first three, past their window; the last three are kept
    with storages[0].database.reading() as conn:
        assert conn.execute(select(func.count()).select_from(rate_entries)).scalar() == 3


def test_expired_counters_and_entries_of_every_key_are_swept(
        storages: tuple[DatabaseRateStorage, DatabaseRateStorage]) -> None:
    storage = storages[0]
    assert MovingWindowRateLimiter(storage).hit(RateLimitItemPerSecond(5), "gone")
    assert SlidingWindowCounterRateLimiter(storage).hit(RateLimitItemPerSecond(500), "gone", cost=9)
    assert MovingWindowRateLimiter(storage).hit(RateLimitItemPerMinute(5), "kept")
    assert storage.incr("fixed", 60, 4) == 4 and storage.incr("fixed", 60, 3) == 7 and storage.get("fixed") == 7
    assert storage.sweep(time.time()) == 0  # nothing is past its expiry yet
    # The sliding counter lives for two windows (it is the "previous" one through the next).
    assert storage.sweep(time.time() + 2.5) == 2
    with storage.database.reading() as conn:
        assert conn.execute(select(rate_entries.c.key)).scalars().all() == ["LIMITER/kept/5/1/minute"]
        assert conn.execute(select(rate_counters.c.key)).scalars().all() == ["fixed"]
    assert storage.check() and storage.get_expiry("fixed") > time.time() + 59
    storage.clear("fixed")
    assert storage.get("fixed") == 0


class _Keys:
    def __init__(self, database: Database) -> None:
        store = KeyStore(database)
        self.shared = store.create("shared", limits=KeyLimits(rate_limit="3/2 seconds"))
        self.other = store.create("other", limits=KeyLimits(rate_limit="3/2 seconds"))


@pytest.fixture
def two_apps(tiny_models_dir: Path, tmp_path: Path,
             database_url: str) -> Iterator[tuple[TestClient, TestClient, _Keys]]:
    """Two API apps (no workers) on one job database, as two replicas behind a load balancer."""
    database = Database(database_url)
    keys = _Keys(database)
    database.close()
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path, workers=0, preload=False,
                        database_url=database_setting(database_url))
    assert settings.rate_limit_storage == "database"  # the default: no setting shares the counters
    with TestClient(create_app(settings), raise_server_exceptions=False) as first, \
            TestClient(create_app(settings), raise_server_exceptions=False) as second:
        yield first, second, keys


def test_two_api_processes_share_a_keys_quota_and_every_counted_response_says_where_it_stands(
        two_apps: tuple[TestClient, TestClient, _Keys]) -> None:
    first, second, keys = two_apps
    shared = {"Authorization": f"Bearer {keys.shared}"}
    answers = [first.get("/v1/jobs", headers=shared), second.get("/v1/jobs", headers=shared),
               first.get(f"/v1/jobs/{uuid.uuid4().hex}", headers=shared)]  # an error counts, and says so, too
    assert [a.status_code for a in answers] == [200, 200, 404]
    for remaining, answer in zip((2, 1, 0), answers, strict=True):
        assert answer.headers["ratelimit-policy"] == '"requests";q=3;w=2'
        left, reset_in = re.fullmatch(r'"requests";r=(\d+);t=(\d+)', answer.headers["ratelimit"]).groups()
        assert int(left) == remaining and 1 <= int(reset_in) <= 2

    refused = second.get("/v1/jobs", headers=shared)  # the fourth, on the other replica: over the shared quota
    error = error_of(refused, 429, "rate_limited")
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2 and error["details"]["remaining"] == 0
    assert refused.headers["ratelimit"] == f'"requests";r=0;t={retry_after}'
    other = second.get("/v1/jobs", headers={"Authorization": f"Bearer {keys.other}"})
    assert other.status_code == 200 and other.headers["ratelimit"].startswith('"requests";r=2;')
    assert "ratelimit" not in first.get("/v1/health").headers  # the probes count nothing, and say nothing

    time.sleep(retry_after)  # the window itself is what is waited for
    deadline = time.monotonic() + 5
    while (again := first.get("/v1/jobs", headers=shared)).status_code == 429:
        assert time.monotonic() < deadline, "the key was still refused well after Retry-After"
        time.sleep(0.1)
    assert again.status_code == 200 and again.headers["ratelimit-policy"] == '"requests";q=3;w=2'


def test_memory_storage_stays_a_setting_away_and_counts_per_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rate_limit_storage="memory://", rate_limit="2/minute")
    key = ApiKey(name="k", key_hash="sha256:0", admin=False)
    first, second = RateLimits(settings), RateLimits(settings)
    assert first.count_request(key)["RateLimit"].startswith('"requests";r=1;')
    assert first.count_request(key)["RateLimit"].startswith('"requests";r=0;')
    with pytest.raises(ApiError) as refused:
        first.count_request(key)
    assert refused.value.status == 429 and refused.value.headers["RateLimit-Policy"] == '"requests";q=2;w=60'
    assert second.count_request(key)["RateLimit"].startswith('"requests";r=1;')  # its own memory, its own count

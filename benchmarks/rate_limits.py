"""What counting a request costs where the per-key counters live: this process's memory, SQLite, PostgreSQL.

Times ``RateLimits.count_request`` (the check-and-count every authenticated request makes, plus the
read behind its ``RateLimit`` headers) one call after another, for a key with an empty window and for a
key whose window already holds ``--backlog`` requests (the moving window keeps one row per counted
request, and a count reads the key's rows in its window: a key with a large quota pays for it). All
three are measured in one run, so their ratios hold on a noisy machine; PostgreSQL is a throwaway server
on loopback (``tests.postgres``, Debian's ``postgresql`` package), skipped when it cannot start.

    python -m benchmarks.rate_limits [--calls 500] [--backlog 5000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from booknlp_api.api.ratelimit import RateLimits
from booknlp_api.config import Settings
from booknlp_api.jobs.database import Database, database_url
from booknlp_api.jobs.keys import ApiKey, KeyLimits


@contextmanager
def _postgres() -> Iterator[str | None]:
    try:
        from tests.postgres import PostgresServer

        server = PostgresServer()
        server.start()
    except Exception as exc:  # the figure is skipped, and the reason printed
        print(f"postgresql: skipped ({exc})")
        yield None
        return
    try:
        yield server.new_database()
    finally:
        server.remove()


def _per_call_ms(limits: RateLimits, key: ApiKey, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        limits.count_request(key)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _measure(name: str, limits: RateLimits, calls: int, backlog: int) -> None:
    fresh = ApiKey(name=f"fresh-{name}", key_hash="sha256:0", limits=KeyLimits(rate_limit="1000000/hour"))
    full = ApiKey(name=f"full-{name}", key_hash="sha256:1", limits=KeyLimits(rate_limit="1000000/hour"))
    empty_ms = _per_call_ms(limits, fresh, calls)
    for _ in range(backlog):
        limits.count_request(full)
    loaded_ms = _per_call_ms(limits, full, calls)
    print(f"{name:<11} median per request: {empty_ms:6.2f} ms (window nearly empty), "
          f"{loaded_ms:6.2f} ms ({backlog}+ requests in the window)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=5000)
    args = parser.parse_args()
    print(f"machine: {platform.node()} ({platform.machine()}), Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder, _postgres() as postgres_url:
        settings = Settings(data_dir=Path(folder))
        _measure("memory", RateLimits(settings.model_copy(update={"rate_limit_storage": "memory://"})),
                 args.calls, args.backlog)
        targets = [("sqlite", f"sqlite:///{folder}/jobs.sqlite3"), ("postgresql", postgres_url)]
        for name, url in targets:
            if url is None:
                continue
            database = Database(database_url(url, Path()))
            try:
                _measure(name, RateLimits(settings, database), args.calls, args.backlog)
            finally:
                database.close()


if __name__ == "__main__":
    main()

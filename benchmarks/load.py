"""Loopback load: many concurrent clients with two API keys against the real ``booknlp-api serve``.

Starts ``booknlp-api serve`` (auth on, a keys file with two keys) on a free loopback port with a fresh
data folder, then runs ``--clients`` asyncio clients for ``--seconds``. Each client belongs to one key
and loops: a probe (``GET /v1/health``), a poll of one of its jobs or of its job list, a job submission
or a short analysis (``"cache": false``: every one runs), with a random think time between requests so
the load is bounded. Key ``steady`` has limits no client reaches; key ``greedy`` (a fifth of the
clients) has ``--greedy-rate`` requests per minute and two jobs at once, so it goes over them.

When time is up it waits for every accepted job to end, then reads the job records from the store and
prints: the count of 5xx (must be 0), probe latency at the client (p50, p99; must be under 100 ms),
whether every accepted job succeeded after exactly one run (``attempts == 1``), and the 429s per key (the
greedy key must get some, the steady key none). The exit status is 1 when any of these fails.

The clients run in this one process, on the same cores as the service, and probe latency is taken at the
client, so a starved generator shows up in it. ``--nice N`` lowers the generator's priority once the service
has started (the service keeps its own): on an otherwise idle machine that leaves the service the CPU; on a
busy one it starves the generator instead (docs/PERFORMANCE.md).

    python -m benchmarks.load --clients 50 --seconds 120

Models are synthesized (random weights, seed 0) into ``--models-dir`` when it has none of ``--size``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.analyze_latency import percentile, serving
from benchmarks.corpus import text_path
from benchmarks.engine_vs_upstream import ensure_models
from booknlp_api.jobs.store import JobStore

KEYS = {"steady": "bnlp_load-steady-key", "greedy": "bnlp_load-greedy-key"}
PROBE_P99_LIMIT = 0.100
DRAIN_SECONDS = 600.0
PIPELINE = ["entity", "quote", "supersense", "event", "coref"]


@dataclass
class Tally:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(key, HTTP status) -> responses."""
    probes: list[float] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)
    """Job id -> the key that submitted it (jobs, and analyses answered 202 with their job)."""
    analyses_done: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def snippets(count: int, chars: int) -> list[str]:
    """``count`` short, distinct passages of a novel (distinct so that no two jobs are the same text)."""
    text = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8-sig")
    step = max(chars, (len(text) - chars) // count)
    return [text[start:start + chars] for start in range(0, step * count, step)]


async def client_loop(client: httpx.AsyncClient, key_name: str, texts: list[str], until: float, tally: Tally,
                      rng: random.Random) -> None:
    headers = {"Authorization": f"Bearer {KEYS[key_name]}"}
    mine: list[str] = []
    while time.monotonic() < until:
        action = rng.choices(("probe", "poll", "submit", "analyze"), weights=(4, 3, 2, 1))[0]
        try:
            if action == "probe":
                started = time.perf_counter()
                response = await client.get("/v1/health")
                tally.probes.append(time.perf_counter() - started)
            elif action == "poll":
                path = f"/v1/jobs/{rng.choice(mine)}" if mine else "/v1/jobs?limit=5"
                response = await client.get(path, headers=headers)
            else:
                body = {"text": rng.choice(texts), "cache": False, "pipeline": PIPELINE, "exclude": ["tokens"]}
                path = "/v1/jobs" if action == "submit" else "/v1/analyze"
                response = await client.post(path, json=body, headers=headers)
                if response.status_code == 202:
                    mine.append(response.json()["id"])
                    tally.accepted[mine[-1]] = key_name
                elif response.status_code == 200:
                    tally.analyses_done += 1
            tally.statuses[(key_name, response.status_code)] += 1
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
        await asyncio.sleep(rng.uniform(0.2, 0.8))


async def run_load(base_url: str, clients: int, seconds: float, texts: list[str], seed: int) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:
        until = time.monotonic() + seconds
        greedy = max(1, clients // 5)
        await asyncio.gather(*(
            client_loop(client, "greedy" if n < greedy else "steady", texts, until, tally, random.Random(seed + n))
            for n in range(clients)))
    return tally


def drained(data_dir: Path) -> list[tuple[str, int]]:
    """(status, attempts) of every job in the store, once none is queued or running (bounded wait)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        store = JobStore(data_dir / "jobs.sqlite3")
        try:
            jobs, _ = store.page(None, 1_000_000, 0)
        finally:
            store.close()
        records = [(job.status, job.attempts) for job in jobs]
        if all(status not in ("queued", "running") for status, _ in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def keys_file(folder: Path, greedy_rate: str) -> Path:
    path = folder / "api-keys"
    path.write_text(f"steady {KEYS['steady']} rate_limit=1000000/minute max_active_jobs=100000\n"
                    f"greedy {KEYS['greedy']} rate_limit={greedy_rate} max_active_jobs=2\n", encoding="utf-8")
    return path


def report(tally: Tally, records: list[tuple[str, int]], seconds: float, clients: int) -> bool:
    total = sum(tally.statuses.values())
    server_errors = sum(n for (_, status), n in tally.statuses.items() if status >= 500)
    p50, p99 = percentile(tally.probes, 0.5), percentile(tally.probes, 0.99)
    once = sum(1 for record in records if record == ("succeeded", 1))
    accepted = len(tally.accepted) + tally.analyses_done
    limited = {key: tally.statuses[(key, 429)] for key in KEYS}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"1-minute load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{clients} clients for {seconds:.0f} s: {total} responses ({total / seconds:.1f}/s), "
          f"transport errors {dict(tally.errors) or 0}")
    for key in KEYS:
        counts = {status: n for (name, status), n in sorted(tally.statuses.items()) if name == key}
        print(f"  key {key}: {counts}")
    print(f"5xx: {server_errors}")
    print(f"probes: {len(tally.probes)}, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
          f"(limit {PROBE_P99_LIMIT * 1000:.0f} ms)")
    print(f"jobs accepted: {accepted} ({len(tally.accepted)} answered 202, {tally.analyses_done} analyses answered "
          f"200); in the store: {len(records)}, of which succeeded after exactly one run: {once}; others "
          f"(status, runs): {sorted(Counter(r for r in records if r != ('succeeded', 1)).items())}")
    print(f"429s: greedy {limited['greedy']}, steady {limited['steady']}")
    checks = {"no 5xx": server_errors == 0, "probe p99 under the limit": p99 < PROBE_P99_LIMIT,
              "every accepted job ran exactly once and succeeded": once == accepted == len(records),
              "the greedy key got 429s": limited["greedy"] > 0, "the steady key got none": limited["steady"] == 0,
              "no transport errors": not tally.errors}
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--size", default="tiny", help="synthetic model size (tiny: the test suite's)")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    parser.add_argument("--text-chars", type=int, default=400, help="length of each submitted text")
    parser.add_argument("--greedy-rate", default="30/minute", help="the greedy key's request rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nice", type=int, default=0, help="lower this generator's priority by this much once the "
                        "service has started (it keeps its own); only for an otherwise idle machine: beside other "
                        "work a niced generator starves and measures its own delays (docs/PERFORMANCE.md)")
    args = parser.parse_args()
    ensure_models(args.models_dir, args.size, 0)
    texts = snippets(200, args.text_chars)
    with tempfile.TemporaryDirectory(prefix="booknlp-load-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = {"BOOKNLP_AUTH": "required", "BOOKNLP_API_KEYS_FILE": str(keys_file(Path(tmp), args.greedy_rate)),
                    "BOOKNLP_MAX_QUEUED_JOBS": "100000", "BOOKNLP_ANALYZE_WAIT_SECONDS": "30"}
        with serving(args.models_dir, args.size, data_dir, threads=1, settings=settings) as client:
            if args.nice:
                os.nice(args.nice)
            tally = asyncio.run(run_load(str(client.base_url), args.clients, args.seconds, texts, args.seed))
            records = drained(data_dir)
    return 0 if report(tally, records, args.seconds, args.clients) else 1


if __name__ == "__main__":
    raise SystemExit(main())

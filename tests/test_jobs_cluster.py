"""Many processes on one PostgreSQL: two API processes and two worker processes, each with its own data
folder (nothing shared but the database URL). Every job runs exactly once and every result is readable
through either API; a worker killed mid-job is replaced by the other; the database stopped as by a crash
(``pg_ctl stop -m immediate``) and started again loses no job, runs none twice, and the APIs answer 503
(never 500) while it is down and recover by themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from booknlp_api.jobs.store import JobStore
from tests.postgres import PostgresServer
from tests.server_process import CLI, Server, has_finished, is_mid_run

JOBS = 50
FAST = ["supersense"]
LEASE = {"BOOKNLP_HEARTBEAT_SECONDS": "1", "BOOKNLP_LEASE_SECONDS": "10"}
"""Short leases so recovery is quick; still longer than the database is kept down."""


@dataclass
class Cluster:
    database: PostgresServer
    url: str
    apis: list[Server]
    workers: list[subprocess.Popen[bytes]]
    worker_env: list[dict[str, str]]
    log: Path

    def store(self) -> JobStore:
        return JobStore(self.url)

    def ready_workers(self) -> dict[str, int]:
        store = self.store()
        try:
            return {w.id: w.pid for w in store.workers().values() if w.state == "ready"}
        finally:
            store.close()

    def start_worker(self, slot: int) -> None:
        with self.log.open("ab") as log:
            self.workers[slot] = subprocess.Popen([str(CLI), "worker"], env=self.worker_env[slot], stdout=log,
                                                  stderr=subprocess.STDOUT)

    def wait_ready(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ready_workers()) < count:
            assert time.monotonic() < deadline, f"{count} workers never became ready:\n{self.tail()}"
            time.sleep(0.5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] + "".join(api.tail() for api in self.apis)


@pytest.fixture(scope="module")
def cluster(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    database = PostgresServer()  # its own server: the tests stop and start it
    database.start()
    url = database.new_database()
    folder = tmp_path_factory.mktemp("cluster")
    settings = {"BOOKNLP_DATABASE_URL": url, "BOOKNLP_WORKERS": "0", **LEASE}
    apis = [Server(tiny_models_dir, folder / f"api{n}", **settings) for n in range(2)]
    for api in apis:
        api.start(until="/v1/health")
    worker_env = [{**apis[0].env, "BOOKNLP_DATA_DIR": str(folder / f"worker{n}")} for n in range(2)]
    cluster = Cluster(database, url, apis, [None, None], worker_env, folder / "workers.log")  # type: ignore[list-item]
    try:
        for slot in range(2):
            cluster.start_worker(slot)
        cluster.wait_ready(2)
        yield cluster
    finally:
        for process in cluster.workers:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(60)
        for api in apis:
            api.stop()
        database.remove()


def _finished(api: Server, job_id: str, timeout: float = 600) -> dict[str, Any]:
    return api.wait(job_id, has_finished, timeout)


def test_fifty_jobs_run_exactly_once_and_every_result_is_readable_through_either_api(cluster: Cluster) -> None:
    first, second = cluster.apis
    ids = [(first if n % 2 else second).submit(f"Book {n}. Mr. Darcy bowed to Elizabeth.", pipeline=FAST,
                                               book_id=f"book{n}") for n in range(JOBS)]
    done = [_finished(first, job_id) for job_id in ids]
    assert {job["status"] for job in done} == {"succeeded"}, [job["error"] for job in done]
    assert {job["attempts"] for job in done} == {1}  # each ran once
    for n, job_id in enumerate(ids):
        via_first, via_second = (api.client.get(f"/v1/jobs/{job_id}/result") for api in cluster.apis)
        assert via_first.status_code == via_second.status_code == 200
        assert via_first.content == via_second.content and via_first.json()["book_id"] == f"book{n}"
        native = cluster.apis[n % 2].client.get(f"/v1/jobs/{job_id}/result", params={"format": "native"})
        assert native.status_code == 200 and native.content[:2] == b"PK"


def test_a_worker_killed_mid_job_is_replaced_by_the_other(cluster: Cluster) -> None:
    api = cluster.apis[0]
    api.hold.touch()  # both workers wait before each BERT batch: the job stays mid-run until the kill
    try:
        job_id = api.submit("Mr. Bingley smiled. " * 200, pipeline=FAST)
        running = api.wait(job_id, is_mid_run)
        store = cluster.store()
        try:
            victim = store.workers()[store.get(job_id).worker_id].pid  # type: ignore[union-attr]
        finally:
            store.close()
        assert running["attempts"] == 1
        os.kill(victim, signal.SIGKILL)
    finally:
        api.hold.unlink(missing_ok=True)
    slot = next(n for n, p in enumerate(cluster.workers) if p.pid == victim)
    cluster.workers[slot].wait(60)
    done = _finished(cluster.apis[1], job_id)
    assert (done["status"], done["attempts"]) == ("succeeded", 2), done["error"]
    cluster.start_worker(slot)
    cluster.wait_ready(2)


def test_the_database_restarting_mid_run_loses_nothing_and_the_apis_answer_503_meanwhile(cluster: Cluster) -> None:
    first, second = cluster.apis
    first.hold.touch()  # the first jobs are mid-run when the database goes
    try:
        ids = [first.submit(f"Restart book {n}. Mr. Collins bowed. " * 20, pipeline=FAST) for n in range(6)]
        first.wait(ids[0], is_mid_run)
        cluster.database.stop("immediate")
        down: list[int] = []
        for _ in range(10):
            for api in (first, second):
                down.append(api.client.get(f"/v1/jobs/{ids[0]}").status_code)
                down.append(api.client.get("/v1/ready").status_code)
            time.sleep(0.2)
        answer = first.client.get(f"/v1/jobs/{ids[0]}")
        assert answer.json()["error"]["code"] == "database_unavailable" and "retry-after" in answer.headers
    finally:
        first.hold.unlink(missing_ok=True)
        cluster.database.start()
    assert set(down) == {503}, down
    done = [_finished(second, job_id) for job_id in ids]
    assert [(job["status"], job["attempts"]) for job in done] == [("succeeded", 1)] * len(ids), done
    fresh = _finished(first, first.submit("After the restart. Jane laughed.", pipeline=FAST))
    assert fresh["status"] == "succeeded"

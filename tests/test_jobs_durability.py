"""Nothing is lost: real `booknlp-api serve` processes killed with real signals, then restarted.

The job store is read directly between runs, while no server is up, to see what a crash left behind.
Each test runs on both databases: the data folder's SQLite and a PostgreSQL database (``database_url``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks.corpus import text_path
from booknlp_api.jobs.tables import blobs
from tests.server_process import Server, database_env, has_finished, is_mid_run, running_server, wait_for_exit

NOVEL = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8")


def _stored(server: Server, job_id: str) -> tuple[list[str], list[str]]:
    """The runs whose results are kept for the job, and the texts kept for it: files in the data folder
    (SQLite), blobs in the database (PostgreSQL)."""
    if server.database_url is None:
        return ([p.name for p in (server.data_dir / "results").glob(f"{job_id}.*")],
                [p.name for p in (server.data_dir / "texts").iterdir()])
    with server.store() as store, store.database.reading() as conn:
        names = conn.execute(select(blobs.c.name)).scalars().all()
    return (sorted({name.split("/")[1] for name in names if name.startswith(f"results/{job_id}.")}),
            [name for name in names if name.startswith("texts/")])


@pytest.mark.timeout(1200)
def test_sigkill_mid_job_then_restart_runs_it_again_once_and_loses_none_of_20_queued(
        tiny_models_dir: Path, tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    with running_server(tiny_models_dir, data_dir, **database_env(database_url)) as server:
        server.start()
        server.hold.touch()  # the job stays running until the kill, however fast the machine
        long = server.submit(NOVEL[:20_000], book_id="pride")
        queued = [server.submit(f"Queued book number {n}. Mr. Bingley smiled.", pipeline=["supersense"])
                  for n in range(20)]
        server.wait(long, is_mid_run)
        with server.store() as store:
            workers = [worker.pid for worker in store.workers().values()]
        assert len(workers) == 1
        assert server.signal(signal.SIGKILL) == -signal.SIGKILL
        wait_for_exit(workers[0])  # no orphan: the worker process notices the API is gone and stops

        with server.store() as store:
            killed = store.get(long)
            # The orphaned worker stopped as on SIGTERM: its job went back to the front of the queue.
            assert killed is not None and (killed.status, killed.attempts) == ("queued", 1)
            assert sorted(store.ids("queued")) == sorted([long, *queued])
            assert store.workers() == {}

        server.hold.unlink()
        server.start()
        rerun = server.wait(long, has_finished)
        assert (rerun["status"], rerun["attempts"]) == ("succeeded", 2), rerun["error"]
        finished = [server.wait(job_id, has_finished) for job_id in queued]
        assert {job["status"] for job in finished} == {"succeeded"}
        assert all(job["started_at"] > rerun["started_at"] for job in finished)  # the recovered job went first
        assert server.client.get(f"/v1/jobs/{long}/result").json()["book_id"] == "pride"

    with server.store() as store:
        recorded = store.get(long)
    assert recorded is not None and recorded.result_dir is not None
    assert _stored(server, long) == ([recorded.result_dir], [])  # the killed run's leftovers are gone
    assert list((data_dir / "work").iterdir()) == []
    with server.store() as store:
        assert store.ids("queued") == store.ids("running") == []


@pytest.mark.timeout(1200)
def test_sigterm_requeues_the_running_job_and_the_restarted_service_finishes_it(
        tiny_models_dir: Path, tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    with running_server(tiny_models_dir, data_dir, **database_env(database_url)) as server:
        server.start()
        server.hold.touch()  # the job is still running when SIGTERM's grace (1 s) ends, however fast the machine
        job_id = server.submit(NOVEL[40_000:50_000])
        server.wait(job_id, is_mid_run)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status still names it.
        assert server.signal(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.tail()

        with server.store() as store:
            stopped = store.get(job_id)
            assert stopped is not None and (stopped.status, stopped.attempts) == ("queued", 1)
            assert stopped.worker_id is None and store.workers() == {}
        assert "re-queued" in server.tail()

        server.hold.unlink()
        server.start()
        done = server.wait(job_id, has_finished)
        assert (done["status"], done["attempts"]) == ("succeeded", 2), done["error"]


@pytest.mark.timeout(1200)
def test_api_and_worker_killed_together_rerun_the_job_and_a_last_attempt_lost_fails_it_as_worker_lost(
        tiny_models_dir: Path, tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    with running_server(tiny_models_dir, data_dir, BOOKNLP_MAX_JOB_ATTEMPTS="2",
                        **database_env(database_url)) as server:
        server.start()
        server.hold.touch()  # every run of the job stays mid-stage until the test has acted
        job_id = server.submit(NOVEL[:3_000])
        server.wait(job_id, is_mid_run)
        with server.store() as store:
            [worker] = [w.pid for w in store.workers().values()]
        os.kill(worker, signal.SIGKILL)  # both at once: nothing is left to stop gracefully or re-queue
        assert server.signal(signal.SIGKILL) == -signal.SIGKILL
        wait_for_exit(worker)
        with server.store() as store:
            orphaned = store.get(job_id)
            assert orphaned is not None and (orphaned.status, orphaned.attempts) == ("running", 1)

        server.start()  # its worker finds the dead worker's job and runs it again: the last attempt
        server.wait(job_id, lambda job: is_mid_run(job) and job["attempts"] == 2)
        with server.store() as store:
            [worker] = [w.pid for w in store.workers().values() if w.state == "ready"]
        os.kill(worker, signal.SIGKILL)
        server.hold.unlink()
        lost = server.wait(job_id, has_finished)
        assert (lost["status"], lost["attempts"], lost["error"]["code"]) == ("failed", 2, "worker_lost"), lost
        refused = server.client.get(f"/v1/jobs/{job_id}/result")
        assert refused.status_code == 409 and refused.json()["error"]["details"]["status"] == "failed"
        # The restarted worker carries on with new work.
        fresh = server.wait(server.submit("Mr. Bingley smiled.", pipeline=["supersense"]), has_finished)
        assert fresh["status"] == "succeeded", fresh["error"]

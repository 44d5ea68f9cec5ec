"""Starts worker processes, restarts any that die, and stops them with the process that started them.

Each worker is ``python -m booknlp_api.cli worker`` with its settings passed as ``BOOKNLP_*`` variables,
so a ``Settings`` object built in code reaches the child unchanged. ``serve`` supervises its workers
this way; so does ``booknlp-api worker`` when ``BOOKNLP_DEVICES`` lists more than one device (one
worker process per device, each pinned to its device).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from booknlp_api.config import Settings
from booknlp_api.device import missing_devices_message, plan_devices
from booknlp_api.jobs.metrics import WORKER_EXITS
from booknlp_api.jobs.metrics_files import process_gone
from booknlp_api.jobs.process import EXIT_LOAD_FAILED, PARENT_POLL_SECONDS, run_worker

log = logging.getLogger(__name__)

STOP_MARGIN_SECONDS = 10.0
"""Beyond the shutdown grace: a worker's own stop takes up to CANCEL_WAIT and a heartbeat more."""
BACKOFF_SECONDS = (1.0, 30.0)
"""First and largest wait before restarting a worker that died; doubles while they keep dying."""
CHECK_SECONDS = 0.5
EXIT_REASONS = ("crashed", "load_failed")


def worker_settings(settings: Settings, count: int) -> list[Settings]:
    """The settings of each worker process to start: one per device ``BOOKNLP_DEVICES`` lists, else ``count``
    alike on ``BOOKNLP_DEVICE``. Listed devices this machine lacks are named in an error and get no worker;
    when it has none of them, the workers fall back to ``count`` on ``BOOKNLP_DEVICE``, as without the list."""
    if settings.devices is None:
        return [settings] * count
    plan = plan_devices(settings.devices)
    if message := missing_devices_message(settings.devices, plan):
        log.error("%s", message)
    if not plan.present:
        log.error("BOOKNLP_DEVICES: no listed device exists here; falling back to %d worker(s) on BOOKNLP_DEVICE=%s",
                  count, settings.device)
        return [settings.model_copy(update={"devices": None})] * count
    return [settings.model_copy(update={"device": device, "devices": None}) for device in plan.present]


def worker_env(settings: Settings, processes: int | None = None) -> dict[str, str]:
    """This process's environment with every setting replaced by the value ``settings`` holds.

    Unless ``torch_threads`` is set, the cores are split between the ``processes`` workers (default
    ``settings.workers``) of this machine: each would otherwise
    start one torch thread per core, and threads that outnumber the cores wait on one another at
    every parallel operation (measured on 2 busy cores: a short warm analysis 7-45x slower). The
    thread count changes no output (1 and 2 threads give bit-identical results).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOOKNLP_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"BOOKNLP_{name.upper()}"] = str(value)
    # The process that starts workers serves their metrics (serve's /metrics, a worker command's port); a child
    # that inherited the port would fail to bind it.
    env.pop("BOOKNLP_WORKER_METRICS_PORT", None)
    processes = settings.workers if processes is None else processes
    if settings.torch_threads is None and processes > 1:
        env["BOOKNLP_TORCH_THREADS"] = str(max(1, usable_cpus() // processes))
    return env


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which container CPU sets narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Supervisor:
    def __init__(self, settings: Settings, slots: list[Settings] | None = None) -> None:
        """``slots``: each worker's settings. Default, for ``serve``: ``worker_settings``, or none at all with
        ``BOOKNLP_WORKERS=0`` (the API only: its workers run elsewhere, whatever ``BOOKNLP_DEVICES`` says)."""
        self.settings = settings
        if slots is None:
            slots = worker_settings(settings, settings.workers) if settings.workers else []
        self.slots = slots
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * len(self.slots)
        self._backoff = [BACKOFF_SECONDS[0]] * len(self.slots)
        self._restart_at = [0.0] * len(self.slots)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        for reason in EXIT_REASONS:
            WORKER_EXITS.labels(reason)  # exported as 0 from the start, so rates and alerts see the first exit
        if self._processes:
            self._thread.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._processes if p is not None and p.poll() is None]

    def _spawn(self, slot: int) -> None:
        command = [sys.executable, "-m", "booknlp_api.cli", "worker", "--exit-with-parent"]
        self._processes[slot] = subprocess.Popen(command, env=worker_env(self.slots[slot], len(self.slots)))
        self._restart_at[slot] = 0.0
        log.info("worker process %d started on %s (pid %d)", slot, self.slots[slot].device,
                 self._processes[slot].pid)  # type: ignore[union-attr]

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                for slot in range(len(self._processes)):
                    self._check(slot, time.monotonic())
            self._stopping.wait(CHECK_SECONDS)

    def _check(self, slot: int, now: float) -> None:
        process = self._processes[slot]
        if process is None:
            if self._restart_at[slot] <= now:
                self._spawn(slot)
            return
        code = process.poll()
        if code is None:
            return
        process_gone(process.pid)
        WORKER_EXITS.labels("load_failed" if code == EXIT_LOAD_FAILED else "crashed").inc()
        if code == EXIT_LOAD_FAILED:
            # The models cannot load; the worker's record says why (readiness reports it). Retrying won't help.
            log.error("worker process %d could not load the models; not restarting it", slot)
            self._restart_at[slot] = float("inf")
        else:
            log.warning("worker process %d (pid %d) exited with %s; restarting in %.0fs", slot, process.pid, code,
                        self._backoff[slot])
            self._restart_at[slot] = now + self._backoff[slot]
            self._backoff[slot] = min(2 * self._backoff[slot], BACKOFF_SECONDS[1])
        self._processes[slot] = None

    def stop(self) -> None:
        """SIGTERM every worker (each finishes or re-queues its job), SIGKILL any still up after the grace."""
        with self._lock:
            self._stopping.set()
            running = [p for p in self._processes if p is not None and p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
            process_gone(process.pid)


def run_worker_command(settings: Settings, *, exit_with_parent: bool = False) -> int:
    """``booknlp-api worker``: one worker in this process, or with ``BOOKNLP_DEVICES`` one worker process per
    device, supervised here until SIGTERM/SIGINT (or, if asked, the parent process dying)."""
    slots = worker_settings(settings, 1)
    if len(slots) == 1:
        return run_worker(slots[0], exit_with_parent=exit_with_parent)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    supervisor = Supervisor(settings, slots)
    supervisor.start()
    while not stop.wait(PARENT_POLL_SECONDS):
        if exit_with_parent and os.getppid() != parent:
            break
    supervisor.stop()
    return 0

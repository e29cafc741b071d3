"""The local backend: runs units as processes on this machine, a few at a time."""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from jobfleet.backends.base import Backend, JobLike, units_of
from jobfleet.environment import process_environment
from jobfleet.job import Job
from jobfleet.resources import resources_from_args
from jobfleet.status import JobStatus
from jobfleet.workdir import STDERR_FILE, STDOUT_FILE, SUBMIT_SCRIPT, read_exit_code

__all__ = ["TIMEOUT", "WALLTIME_KILL_GRACE", "Local", "LocalResult", "start_wrapper"]

log = logging.getLogger("jobfleet.backends.local")

#: The failure reason of a unit stopped at its walltime (as the batch backends report it).
TIMEOUT = "timeout"
#: Seconds between SIGTERM and SIGKILL when a unit outlives its walltime.
WALLTIME_KILL_GRACE = 10.0


_Event = tuple[str, Job, int | None, str]


def start_wrapper(
    workdir: str | os.PathLike[str], stdout: int, stderr: int, *, inherit_env: bool
) -> subprocess.Popen[bytes]:
    """Start the unit's wrapper script in ``workdir``, its output to the given descriptors.

    In a session of its own: it survives the process that started it, and the whole
    group can be signalled (a terminal's Ctrl-C reaches us, and we pass it on).
    """
    return subprocess.Popen(
        ["/bin/bash", SUBMIT_SCRIPT],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=process_environment(inherit_env),
        start_new_session=True,
    )


class LocalResult:
    """``job.result`` of a locally run job: applies news from the worker threads."""

    def __init__(self, backend: Local, job: Job) -> None:
        self.backend = backend
        self.job = job

    def update_status(self) -> None:
        self.backend.apply_events()

    def ready(self) -> bool:
        return self.job.status.is_final

    def wait(self, timeout: float) -> bool:
        """Block until there is news (or ``timeout`` seconds); used by ``monitor_jobs``."""
        return self.backend.wait_for_events(timeout)


class Local(Backend):
    """Run jobs as local processes, at most ``max_processes`` at a time.

    Each unit runs ``bash submit.sh`` in its own working directory and process
    group, with stdout and stderr written to files there. Like on every backend,
    a job does not get the submitting process's environment by default: it gets
    ``PATH=/usr/local/bin:/usr/bin:/bin`` and the identity and locale variables
    (:data:`jobfleet.environment.CLEAN_ENV_KEYS`), plus what its ``setup_cmds``
    add (see :meth:`Job.append_current_setup_cmds`). With ``inherit_env=True``
    (argument or backend_args) it gets the whole submitting environment.

    A unit with a ``walltime`` resource gets SIGTERM on its process group when
    it has run that long (SIGKILL :data:`WALLTIME_KILL_GRACE` seconds later) and
    ends ``failed`` with reason ``timeout``, as on a batch scheduler.

    Job statuses change when ``update_status()`` is called (on the job, or
    through :func:`~jobfleet.monitor.monitor_jobs`), in the caller's thread.
    ``shutdown()``, the end of the program, or Ctrl-C terminate running jobs:
    they end ``failed`` with exit code 143 (SIGTERM) or 130 (SIGINT).
    """

    name = "local"

    def __init__(
        self,
        *,
        backend_args: Mapping[str, Any] | None = None,
        max_processes: int = 1,
        inherit_env: bool | None = None,
    ) -> None:
        super().__init__(backend_args=backend_args)
        if inherit_env is None:
            inherit_env = bool(self.backend_args.get("inherit_env", False))
        self.inherit_env = inherit_env
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._running: dict[Job, subprocess.Popen[bytes]] = {}
        self._cancelled: set[Job] = set()
        self._timed_out: set[Job] = set()
        self._events: collections.deque[_Event] = collections.deque()
        self._news = threading.Condition()
        self._lock = threading.Lock()
        self._stop_reason: str | None = None
        self._max_processes = 1
        self.max_processes = max_processes
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Local(max_processes={self._max_processes})"

    @property
    def max_processes(self) -> int:
        return self._max_processes

    @max_processes.setter
    def max_processes(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_processes must be an integer >= 1, got {value!r}")
        if self._workers:
            log.info("%r: draining before changing max_processes to %d", self, value)
            self.join()
            self._stop_workers()
        self._max_processes = value

    # -- submission --------------------------------------------------------------------------

    def _submit_units(self, units: list[Job]) -> None:
        _install_interrupt_handler()
        self._stop_reason = None
        self._start_workers()
        for unit in units:
            unit.result = LocalResult(self, unit)
            unit.attempt += 1
            self._cancelled.discard(unit)
            unit.set_status(JobStatus.submitted, force=unit.status.is_final)
            self._queue.put(unit)

    def _parent_result(self, parent: Job) -> LocalResult:
        return LocalResult(self, parent)

    def _start_workers(self) -> None:
        while len(self._workers) < self._max_processes:
            worker = threading.Thread(target=self._work, name="jobfleet-local", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _stop_workers(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()
        self._workers = []

    def _work(self) -> None:
        while (unit := self._queue.get()) is not None:
            try:
                self._run(unit)
            except Exception as err:  # a worker must survive anything one unit does
                log.exception("%r: could not run %s", self, unit.name)
                self._emit("error", unit, None, f"could not start: {err}")
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _run(self, unit: Job) -> None:
        if unit in self._cancelled or self._stop_reason:
            self._emit("skipped", unit, None)
            return
        # Preparing here, in the worker, overlaps file writing with running other units.
        self.prepare(unit)
        workdir = unit.working_dir
        with open(workdir / STDOUT_FILE, "wb") as out, open(workdir / STDERR_FILE, "wb") as err:
            proc = start_wrapper(workdir, out.fileno(), err.fileno(), inherit_env=self.inherit_env)
        with self._lock:
            self._running[unit] = proc
            stop_reason = self._stopping()
            cancelled = unit in self._cancelled
        if stop_reason or cancelled:  # stopped while we were starting it
            interrupted = stop_reason == "interrupted"
            _signal_group(proc, signal.SIGINT if interrupted else signal.SIGTERM)
        self._emit("started", unit, None)
        returncode = self._wait(unit, proc)
        with self._lock:
            del self._running[unit]
        self._emit("finished", unit, returncode)

    def _wait(self, unit: Job, proc: subprocess.Popen[bytes]) -> int:
        """Wait for the unit's process, stopping it at its walltime."""
        walltime = resources_from_args(self.job_backend_args(unit)).walltime_s
        if walltime is None:
            return proc.wait()
        try:
            return proc.wait(timeout=walltime)
        except subprocess.TimeoutExpired:
            pass
        log.info("%s: walltime of %d s reached, terminating it", unit.name, walltime)
        with self._lock:
            self._timed_out.add(unit)
        _signal_group(proc, signal.SIGTERM)
        try:
            return proc.wait(timeout=WALLTIME_KILL_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            return proc.wait()

    def _stopping(self) -> str | None:
        """Why the backend is stopping, if it is (read fresh: worker threads race with it)."""
        return self._stop_reason

    def _emit(self, kind: str, unit: Job, returncode: int | None, detail: str = "") -> None:
        with self._news:
            self._events.append((kind, unit, returncode, detail))
            self._news.notify_all()

    # -- following ---------------------------------------------------------------------------

    def wait_for_events(self, timeout: float) -> bool:
        with self._news:
            return bool(self._events) or self._news.wait_for(lambda: bool(self._events), timeout)

    def apply_events(self) -> None:
        """Apply what the worker threads reported to the job objects (in this thread)."""
        while True:
            try:
                kind, unit, returncode, detail = self._events.popleft()
            except IndexError:
                return
            if kind == "started":
                unit.set_status(JobStatus.running)
            elif kind == "error":
                self._finish(unit, None, reason=detail)
            elif kind == "skipped":
                self._finish(
                    unit,
                    None,
                    reason="cancelled"
                    if unit in self._cancelled
                    else f"not started: {self._stop_reason or 'backend shut down'}",
                )
            else:
                self._finish_process(unit, returncode)

    def _finish_process(self, unit: Job, returncode: int | None) -> None:
        exit_code = read_exit_code(unit.working_dir)
        if exit_code is None and returncode is not None:
            # The wrapper itself died (e.g. SIGKILL) before it could record anything.
            exit_code = 128 - returncode if returncode < 0 else returncode
        reason = "cancelled" if unit in self._cancelled else None
        with self._lock:
            if unit in self._timed_out:
                self._timed_out.discard(unit)
                reason = reason or TIMEOUT
        self._finish(unit, exit_code, reason)

    def join(self) -> None:
        """Wait until every submitted unit has ended, then update the statuses."""
        while self._queue.unfinished_tasks:
            with self._queue.all_tasks_done:
                self._queue.all_tasks_done.wait(0.5)
        self.apply_events()

    # -- stopping ----------------------------------------------------------------------------

    def cancel(self, job: JobLike | Sequence[JobLike]) -> None:
        targets = [u for u in units_of(job) if not u.status.is_final and u.result is not None]
        with self._lock:
            self._cancelled.update(targets)
            running = [self._running[u] for u in targets if u in self._running]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        log.info("%r: cancelling %d units (%d running)", self, len(targets), len(running))

    def shutdown(self, signum: int = signal.SIGTERM, *, grace: float = 10.0) -> None:
        """Stop: queued units never start, running ones get ``signum``.

        Units still running ``grace`` seconds later are killed with SIGKILL.
        """
        self._stop(signum)
        deadline = time.monotonic() + grace
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            stubborn = list(self._running.values())
        for proc in stubborn:
            _signal_group(proc, signal.SIGKILL)
        if self._workers:
            self.join()
            self._stop_workers()

    def _stop(self, signum: int) -> None:
        with self._lock:
            self._stop_reason = "interrupted" if signum == signal.SIGINT else "terminated"
            running = list(self._running.values())
        for proc in running:
            _signal_group(proc, signum)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


_LIVE: weakref.WeakSet[Local] = weakref.WeakSet()
_previous_handler: Any = None
_handler_installed = False


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    for backend in list(_LIVE):
        backend._stop(signal.SIGINT)
    if callable(_previous_handler):
        _previous_handler(signum, frame)
    elif _previous_handler != signal.SIG_IGN:
        raise KeyboardInterrupt


def _install_interrupt_handler() -> None:
    """Forward Ctrl-C to running local jobs, then behave as before (usually KeyboardInterrupt)."""
    global _previous_handler, _handler_installed
    if _handler_installed or threading.current_thread() is not threading.main_thread():
        return
    _previous_handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _on_interrupt)
    _handler_installed = True


@atexit.register
def _shutdown_all() -> None:
    for backend in list(_LIVE):
        if backend._running:
            backend.shutdown(signal.SIGTERM, grace=5.0)

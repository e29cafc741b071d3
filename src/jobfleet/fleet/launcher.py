"""Launching local units between polls: when a unit's process ends, the next one starts at once.

Without this, a local runner starts new units only when it polls (every
:attr:`~jobfleet.fleet.localrunner.LocalDriver.poll_interval` seconds), so short
units leave the processes idle most of the time. Each poll hands the
:class:`Launcher` the units still queued per job, the job's limit and how many
of its units run without this runner's knowledge (adopted from a previous
runner). One thread waits for all launched processes (epoll on their pidfds)
and, as one ends, starts the next queued unit of the same job. The files protocol
(:mod:`jobfleet.fleet.unitfiles`) still decides who runs a unit: a claim that
fails (a cancel, another runner) just skips it.

A plan is only followed for :data:`FRESH_FOR` seconds after the poll that made
it: a runner that stopped polling (it gave up the lease) soon stops launching.
A unit that fails starts nothing: its job waits for the poll, which applies the
retry policy first (as when every start happened at a poll).
"""

from __future__ import annotations

import collections
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from jobfleet.job import Job
from jobfleet.store import StatusUpdate, SubjobRecord

__all__ = ["FRESH_FOR", "Launcher", "Queued"]

#: Seconds after a poll during which ending processes start the next queued units.
FRESH_FOR = 2.0

Queued = tuple[SubjobRecord, Job]
#: Claims and starts one unit; ``None`` if it was not ours to start (claimed elsewhere).
Start = Callable[[SubjobRecord, Job], StatusUpdate | None]


class Launcher:
    """Keeps each job's running units up to its limit, between polls too."""

    def __init__(self, start: Start, lock: threading.RLock) -> None:
        self._start = start
        self.lock = lock  # shared with the driver: it guards the driver's children as well
        self._queued: dict[int, collections.deque[Queued]] = {}
        self._limits: dict[int, int] = {}
        self._others: dict[int, int] = {}
        self._inflight: dict[int, int] = collections.defaultdict(int)
        self._news: list[StatusUpdate] = []
        self._until = 0.0
        self._halted = False
        self._reaper = _Reaper(self._ended)
        #: Set when the last running launched process ends, so a watcher polls at once.
        self.ended = threading.Event()

    def plan(
        self,
        queued: Mapping[int, Sequence[Queued]],
        limits: Mapping[int, int],
        others: Mapping[int, int],
    ) -> list[StatusUpdate]:
        """Replace the plan with a poll's view; start what fits now and return the updates."""
        with self.lock:
            if self._halted:
                return []
            self._queued = {job_id: collections.deque(q) for job_id, q in queued.items()}
            self._limits = dict(limits)
            self._others = dict(others)
            self._until = time.monotonic() + FRESH_FOR
            started: list[StatusUpdate] = []
            for job_id in self._queued:
                started += self._fill(job_id)
            return started

    def halt(self) -> None:
        """Start nothing more, from now on (the runner is being interrupted)."""
        with self.lock:
            self._halted = True
            self._queued = {}

    def nudge(self) -> None:
        """Set :attr:`ended` if nothing launched runs: a poll now may find new work."""
        with self.lock:
            if not any(self._inflight.values()):
                self.ended.set()

    def take_news(self) -> list[StatusUpdate]:
        """Updates of the units started since the last call (to report with the next poll)."""
        with self.lock:
            news, self._news = self._news, []
            return news

    def watch(self, job_id: int, proc: subprocess.Popen[bytes]) -> None:
        """Count ``proc`` as running for ``job_id`` until it ends, then start the next unit."""
        with self.lock:
            self._inflight[job_id] += 1
            if self._reaper.add(proc, job_id):
                return
        # No pidfd here (not Linux >= 5.3): a thread of its own waits for this process.
        threading.Thread(
            target=lambda: self._ended(job_id, proc.wait()), name="jobfleet-launcher", daemon=True
        ).start()

    def _ended(self, job_id: int, code: int) -> None:
        with self.lock:
            self._inflight[job_id] -= 1
            # After a failure the job waits for the poll: the retry policy counts failures
            # per poll, and a failing job must not burn through its queue in between.
            if code == 0 and time.monotonic() < self._until:
                self._news += self._fill(job_id)
            if not any(self._inflight.values()):
                # Nothing of ours runs any more: the job may have just ended. (Not on
                # every end: thousands of short units must not mean thousands of polls.)
                self.ended.set()

    def _fill(self, job_id: int) -> list[StatusUpdate]:
        """Start queued units of ``job_id`` while it is below its limit (lock held)."""
        started: list[StatusUpdate] = []
        queue = self._queued.get(job_id)
        limit = self._limits.get(job_id, 1)
        while queue and self._inflight[job_id] + self._others.get(job_id, 0) < limit:
            rec, unit = queue.popleft()
            update = self._start(rec, unit)
            if update is not None:
                started.append(update)
        return started


class _Reaper:
    """One thread waiting for all launched processes at once (epoll on their pidfds).

    Starting a thread per process costs more than the process itself on a busy
    machine (``Thread.start`` waits until the new thread runs).
    """

    def __init__(self, ended: Callable[[int, int], None]) -> None:
        self._ended = ended
        self._epoll: select.epoll | None = None
        self._procs: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
        self._lock = threading.Lock()

    def add(self, proc: subprocess.Popen[bytes], job_id: int) -> bool:
        """Watch ``proc``; False if this system cannot (then the caller waits itself)."""
        if not hasattr(os, "pidfd_open") or not hasattr(select, "epoll"):
            return False
        try:
            fd = os.pidfd_open(proc.pid)
        except OSError:
            return False
        with self._lock:
            if self._epoll is None:
                self._epoll = select.epoll()
                threading.Thread(target=self._run, name="jobfleet-reaper", daemon=True).start()
            self._procs[fd] = (proc, job_id)
            self._epoll.register(fd, select.EPOLLIN)  # safe while _run waits in epoll.poll
        return True

    def _run(self) -> None:
        assert self._epoll is not None
        while True:
            for fd, _ in self._epoll.poll(1.0):
                with self._lock:
                    proc, job_id = self._procs.pop(fd)
                    self._epoll.unregister(fd)
                os.close(fd)
                self._ended(job_id, proc.wait())  # readable pidfd: it has exited, no blocking

"""The local driver: units run as detached processes on this machine, crash-safe via the store.

Submitting only prepares working directories and records native id ``local``
(status ``submitted``). The process holding the ``poll:local`` lease is the
*runner*: each :meth:`LocalDriver.poll` launches queued units, at most
``max_processes`` per job at a time, and checks the running ones.

Every unit runs in its own session (``start_new_session``), so it survives the
runner being killed. Its state lives in files in its working directory (see
:mod:`jobfleet.fleet.unitfiles`), which is what lets a new runner carry on: it
*adopts* what it finds. A unit whose exit code file says ``running <pid>``
and whose pid is alive (and started before the file was written) is
``running``; one whose file holds its exit code has ended; one that is gone
without one is ``failed`` ("lost"). A claim left without that file for
:data:`CLAIM_GRACE` seconds (a runner killed between claiming and launching)
is launched again: the unit creates the file exclusively before running
anything, so at most one launch runs it.

A unit with a ``walltime`` resource that has run longer (counted from when it
wrote ``running``) is stopped like a batch scheduler does it: :data:`TIMEOUT_FILE` is
written, its process group gets SIGTERM, SIGKILL
:data:`~jobfleet.backends.local.WALLTIME_KILL_GRACE` seconds later, and it ends
``failed`` with reason ``timeout``. The file lets a runner that takes over
finish the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobfleet.backends.base import owner_of
from jobfleet.backends.local import TIMEOUT, WALLTIME_KILL_GRACE, start_wrapper
from jobfleet.errors import SpecError
from jobfleet.fleet.driver import (
    CANCELLED,
    BackendOptionsError,
    JobCache,
    NoteSubmitting,
    RecordSubmitted,
    register_driver,
)
from jobfleet.fleet.launcher import Launcher, Queued
from jobfleet.fleet.localprep import prepare_units, workdir_text
from jobfleet.fleet.unitfiles import (
    CLAIM_FILE,
    LOST_RACE_EXIT,
    STATE_FILE,
    TIMEOUT_FILE,
    UnitState,
    cancel_unit,
    claim,
    claim_age,
    process_started_at,
    read_state,
    reopen_claim,
    state_age,
    terminate_for_walltime,
)
from jobfleet.job import Job
from jobfleet.resources import resources_from_args
from jobfleet.status import reason_for_exit_code
from jobfleet.store import WHOLE_JOB, JobRecord, StatusUpdate, SubjobRecord
from jobfleet.workdir import (
    STDERR_FILE,
    collect_outputs,
    read_exit_code,
    render_wrapper,
)

__all__ = [
    "CLAIM_FILE",
    "CLAIM_GRACE",
    "LOST_NO_EXIT_CODE",
    "STATE_FILE",
    "TIMEOUT_FILE",
    "LocalDriver",
    "process_started_at",
]

log = logging.getLogger("jobfleet.fleet.localrunner")

#: Seconds a claim may exist without state file before the unit is launched again.
CLAIM_GRACE = 10.0
LOST_NO_EXIT_CODE = "lost: process ended without an exit code"
_OPTIONS = ("max_processes", "inherit_env", "poll_interval")
#: Seconds a unit found unclaimed is taken as still queued without looking at its files.
#: Only a runner that has just lost the lease may claim it meanwhile, and then our own
#: claim fails and drops it: a safety net, kept rare (at 2 s, checking files of units
#: not yet started took a quarter of a 3,000-subjob watcher's time).
_RECHECK_QUEUED = 10.0


_ChildKey = tuple[int, int, int]


def _child_key(rec: SubjobRecord) -> _ChildKey:
    """Job, subjob and attempt: what one launched process belongs to."""
    return (rec.job_id, rec.subjob_id, rec.attempt)


def _max_processes(options: Mapping[str, Any]) -> int:
    value = options.get("max_processes", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackendOptionsError(
            f"backend 'local': option 'max_processes': an integer >= 1 is required, got {value!r}"
        )
    return value


class LocalDriver:
    """Driver of backend ``local``; options ``max_processes`` (default 1) and ``inherit_env``.

    ``max_processes`` limits how many units of one job run at once (each job
    keeps the value it was submitted with). Units run in a clean environment
    (:func:`jobfleet.environment.clean_environment`) unless ``inherit_env=True``
    passes them the runner's whole environment.
    """

    name = "local"
    poll_interval = 0.25  # a poll is one store read and a few stat() calls per unit

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise BackendOptionsError(
                f"backend 'local': unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(_OPTIONS)})"
            )
        self.max_processes = _max_processes(options)
        self.inherit_env = bool(options.get("inherit_env", False))
        if "poll_interval" in options:
            try:
                self.poll_interval = float(options["poll_interval"])
            except (TypeError, ValueError):
                raise BackendOptionsError(
                    f"backend 'local': poll_interval must be a number of seconds, "
                    f"got {options['poll_interval']!r}"
                ) from None
        self._jobs = JobCache()
        # Processes this runner launched, so it can reap them and learn how they died.
        # Keyed by attempt too: a unit resubmitted meanwhile is not the process that ended.
        self._children: dict[_ChildKey, subprocess.Popen[bytes]] = {}
        # Its own lock, not the launcher's: a poll must not wait for a launch (a fork) to
        # look a child up. Taken after the launcher's lock where both are held.
        self._children_lock = threading.Lock()
        # Attempts being launched right now (claimed, not yet in _children): a poll that
        # finds their claim must count them as ours, or it halves the job's limit till
        # the next poll (it did, a third of the time, with many short units).
        self._launching: set[_ChildKey] = set()
        # Units the last full check found unclaimed (no claim, no state file); trusted until
        # _unclaimed_until, so a poll of 10,000 queued units does not stat them all each time.
        self._unclaimed: set[tuple[int, int]] = set()
        # Nothing in the set yet, so the first poll checks everything anyway; not clearing
        # it then keeps what know_job put there.
        self._unclaimed_until = time.monotonic() + _RECHECK_QUEUED
        # Starts the next queued unit as soon as one ends, not only at the next poll.
        self._launcher = Launcher(self._launch, threading.RLock())

    def __repr__(self) -> str:
        return f"LocalDriver(max_processes={self.max_processes})"

    def know_job(self, record: JobRecord, job: Job) -> None:
        """A job this process stored (as ``record``): polls use it as it is (they only
        read units; rebuilding 10,000 subjobs took 0.1 s before the first start) and take
        its units as unclaimed until the next full check. Only the poll lease holder
        claims units; if another runner got one first, our claim fails and the unit's
        files are checked from then on."""
        self._jobs.remember(record, job)
        self._unclaimed.update((record.id, sid) for sid in (job.subjobs or (WHOLE_JOB,)))

    def wait_for_change(self, timeout: float) -> None:
        """Sleep up to ``timeout`` s, returning early when a unit this runner started ends."""
        if self._launcher.ended.wait(timeout):
            self._launcher.ended.clear()

    def wake(self) -> None:
        """New units were recorded: if nothing of ours runs, end :meth:`wait_for_change` now."""
        self._launcher.nudge()

    def stop_launching(self) -> None:
        """Launch no more units; polls still check the running ones (before an interrupt)."""
        self._launcher.halt()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if not Path("/bin/bash").exists():
            return False, "/bin/bash not found"
        return True, ""

    # -- submit ------------------------------------------------------------------------------

    def submit(
        self,
        job: Job,
        units: Sequence[Job],
        record: RecordSubmitted,
        note: NoteSubmitting | None = None,
    ) -> None:
        """Prepare the units' working directories; they run once a runner polls.

        Nothing is noted (``note``): a unit is only "submitted" here, and its launch
        is made exactly once by its own files (:mod:`jobfleet.fleet.unitfiles`).
        """
        prepare_units(job, units, record, self.render_script)

    def render_script(self, unit: Job) -> str:
        # The wrapper itself takes the commit point: one bash per unit, no launch runs twice.
        return render_wrapper(unit, start_marker=True, lost_race_exit=LOST_RACE_EXIT)

    # -- poll (the runner) -------------------------------------------------------------------

    def poll(
        self, job_records: Mapping[int, JobRecord], active: Sequence[SubjobRecord]
    ) -> list[StatusUpdate]:
        """Check running units, adopt orphans, launch queued units up to the limit.

        Between polls the launcher starts the next queued unit whenever one of
        ours ends; those starts are reported here, before what the files say now.
        """
        updates = self._launcher.take_news()
        others: dict[int, int] = {}  # running units of each job that this runner did not start
        queued: dict[int, list[Queued]] = {}
        now = time.monotonic()
        if now > self._unclaimed_until:  # check every unit's files again now and then
            self._unclaimed.clear()
            self._unclaimed_until = now + _RECHECK_QUEUED
        for rec in active:
            job_record = job_records.get(rec.job_id)
            if job_record is None:
                continue
            unit = self._jobs.unit(job_record, rec.subjob_id)
            key, child_key = (rec.job_id, rec.subjob_id), _child_key(rec)
            pid = self._reaped_pid(child_key)
            if pid is not None:  # ended, and this runner saw it end: no need to ask /proc
                updates.append(self._ended(rec, unit, pid))
                continue
            if rec.status == "submitted" and key in self._unclaimed:
                # Nothing but this runner claims a unit while it holds the lease (a cancel
                # takes the unit out of the active ones), and its launches drop the key.
                queued.setdefault(rec.job_id, []).append((rec, unit))
                continue
            update, is_running = self._check(rec, unit)
            if update is not None:
                updates.append(update)
            if is_running:
                with self._children_lock:
                    ours = child_key in self._children or child_key in self._launching
                if not ours:
                    others[rec.job_id] = others.get(rec.job_id, 0) + 1
            elif update is None:
                queued.setdefault(rec.job_id, []).append((rec, unit))
                self._unclaimed.add(key)
        limits = {job_id: self._limit(job_records[job_id]) for job_id in queued}
        return updates + self._launcher.plan(queued, limits, others)

    def _limit(self, job_record: JobRecord) -> int:
        try:
            return _max_processes(job_record.backend_options)
        except BackendOptionsError:
            return self.max_processes

    def _check(self, rec: SubjobRecord, unit: Job) -> tuple[StatusUpdate | None, bool]:
        """What became of a unit: ``(update, counts as running)``; ``(None, False)``: queued."""
        workdir = unit.working_dir
        info = read_state(workdir)
        if info is None:
            age = claim_age(workdir)
            if age is None:
                return None, False
            if age > CLAIM_GRACE:
                # The launcher died before the unit started: it never ran, so launch it.
                log.warning(
                    "%s: claimed %.0f s ago but never started; launching it", unit.name, age
                )
                return self._spawn(rec, unit, relaunch=True), True
            return None, True  # being launched right now
        if info.cancelled:
            with self._children_lock:  # a launch of ours may have lost to the cancel
                self._children.pop(_child_key(rec), None)
            return self._failed(rec, None, CANCELLED), False
        if info.exit_code is not None:
            return self._ended(rec, unit, None, info.exit_code), False
        if not info.settled:
            if state_age(workdir) > CLAIM_GRACE:  # died while writing it
                return self._failed(rec, None, LOST_NO_EXIT_CODE), False
            return None, True
        if info.alive():
            self._enforce_walltime(unit, info)
            if rec.status == "running":
                return None, True
            return StatusUpdate(rec.job_id, rec.subjob_id, "running"), True
        return self._ended(rec, unit, info.pid), False

    def _reaped_pid(self, key: _ChildKey) -> int | None:
        """The pid of this runner's launch of an attempt if it ran the unit and has ended.

        A launch that lost the race to another one exits :data:`LOST_RACE_EXIT`, and one
        killed by a signal may not have got as far as its state file: for those (and for a
        command that exits 75 itself) the unit's files decide, as for anybody's unit.
        """
        with self._children_lock:
            child = self._children.get(key)
        if child is None:
            return None
        code = child.returncode  # set by the reaper's wait()
        if code is None or code < 0 or code == LOST_RACE_EXIT:
            return None
        return child.pid

    @staticmethod
    def _enforce_walltime(unit: Job, info: UnitState) -> None:
        """SIGTERM a unit that has run longer than its walltime; SIGKILL it after a grace."""
        try:
            walltime = resources_from_args(owner_of(unit).backend_args).walltime_s
        except SpecError:
            return  # refused at submission already; nothing to enforce
        if walltime is not None and state_age(unit.working_dir) > walltime:
            terminate_for_walltime(unit.working_dir, info.pid, walltime, WALLTIME_KILL_GRACE)

    def _ended(
        self, rec: SubjobRecord, unit: Job, pid: int | None, exit_code: int | None = None
    ) -> StatusUpdate:
        """The final update of a unit that has ended; ``pid``: its process, if known;
        ``exit_code``: what its state file said, if it was just read."""
        with self._children_lock:
            child = self._children.pop(_child_key(rec), None)
        if child is not None and child.pid != pid:
            child = None  # ours lost the launch race; another process ran the unit
        if exit_code is None:
            exit_code = read_exit_code(unit.working_dir)
        if (unit.working_dir / TIMEOUT_FILE).exists():
            return self._failed(rec, exit_code, TIMEOUT)
        if exit_code is None and child is not None:
            # It died after this poll reaped; it is gone already, so this returns at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1.0)
            if child.returncode is not None:
                # The wrapper itself died (SIGKILL) before it could record anything.
                code = child.returncode
                exit_code = 128 - code if code < 0 else code
                return self._failed(rec, exit_code, reason_for_exit_code(exit_code))
        if exit_code is None:
            return self._failed(rec, None, LOST_NO_EXIT_CODE)
        if exit_code != 0:
            return self._failed(rec, exit_code, reason_for_exit_code(exit_code))
        try:
            collect_outputs(unit)
        except OSError as err:
            return self._failed(rec, 0, f"output collection: {err}")
        return StatusUpdate(rec.job_id, rec.subjob_id, "completed", exit_code=0)

    @staticmethod
    def _failed(rec: SubjobRecord, exit_code: int | None, reason: str | None) -> StatusUpdate:
        return StatusUpdate(rec.job_id, rec.subjob_id, "failed", exit_code=exit_code, reason=reason)

    def _launch(self, rec: SubjobRecord, unit: Job) -> StatusUpdate | None:
        self._unclaimed.discard((rec.job_id, rec.subjob_id))  # claimed now, by us or another
        return self._spawn(rec, unit, relaunch=False)

    def _spawn(self, rec: SubjobRecord, unit: Job, *, relaunch: bool) -> StatusUpdate | None:
        """Claim the unit (``relaunch``: under its earlier claim) and start it; ``None`` if
        another runner claimed it first."""
        workdir = workdir_text(unit)
        key = _child_key(rec)
        with self._children_lock:
            self._launching.add(key)  # before the claim exists: no poll sees it as others'
        error: OSError | None = None
        try:
            proc = self._start_claimed(workdir, relaunch)
        except OSError as err:
            proc, error = None, err
        with self._launcher.lock:
            with self._children_lock:
                self._launching.discard(key)
                if proc is not None:
                    self._children[key] = proc
            if proc is not None:
                self._launcher.watch(rec.job_id, proc)
        if error is not None:
            log.warning("%s: could not start: %s", unit.name, error)
            return self._failed(rec, None, f"could not start: {error}")
        if proc is None:
            return None
        log.info("%s: started (pid %d)", unit.name, proc.pid)
        return StatusUpdate(rec.job_id, rec.subjob_id, "running")

    def _start_claimed(self, workdir: str, relaunch: bool) -> subprocess.Popen[bytes] | None:
        """Claim the unit in ``workdir`` and start its wrapper; ``None`` if claimed already."""
        out = reopen_claim(workdir) if relaunch else claim(workdir)
        if out is None:
            return None
        try:
            # Append: a launch that loses the race must not truncate the winner's output.
            err_fd = os.open(f"{workdir}/{STDERR_FILE}", _APPEND, 0o644)
            try:
                return start_wrapper(workdir, out, err_fd, inherit_env=self.inherit_env)
            finally:
                os.close(err_fd)
        finally:
            os.close(out)

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self, job_records: Mapping[int, JobRecord], records: Sequence[SubjobRecord]) -> None:
        """Block never-launched units for good, SIGTERM the process groups of launched ones."""
        for rec in records:
            job_record = job_records.get(rec.job_id)
            if job_record is None:
                continue
            cancel_unit(self._jobs.unit(job_record, rec.subjob_id).working_dir)


_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


register_driver("local", LocalDriver, needs_runner=True)

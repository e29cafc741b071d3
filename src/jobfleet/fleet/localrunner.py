"""The local driver: units run as detached processes on this machine, crash-safe via the store.

Submitting only prepares working directories and records native id ``local``
(status ``submitted``). The process holding the ``poll:local`` lease is the
*runner*: each :meth:`LocalDriver.poll` launches queued units, at most
``max_processes`` per job at a time, and checks the running ones.

Every unit runs ``bash submit.sh`` in its own session (``start_new_session``),
so it survives the runner being killed; its state lives in files in the unit's
working directory, which is what lets a new runner carry on:

``__JOBFLEET_CLAIM__``
    created with ``O_CREAT | O_EXCL`` before launching. Whoever creates it may
    launch the unit; nobody else ever will. A claim is never removed except by
    a resubmission, so a unit cannot run twice.
``__JOBFLEET_PID__``
    ``"<pid> <start time>"`` written right after the launch. The start time
    (field 22 of ``/proc/<pid>/stat``) tells a live unit from an unrelated
    process that got the same pid later.

A new runner *adopts* what it finds: a live pid is ``running``; a gone one
ended with the exit code the wrapper left (``__BACKEND_CMD_EXIT_STATUS__``) or,
without one, is ``failed`` ("lost"). A claim without pid file older than
:data:`CLAIM_GRACE` seconds means a runner died between claiming and
launching; the unit is failed rather than relaunched, because it may in fact
be running and launching it again could run it twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobfleet.fleet.driver import (
    BackendOptionsError,
    JobCache,
    RecordSubmitted,
    register_driver,
    subjob_id_of,
)
from jobfleet.job import Job
from jobfleet.status import reason_for_exit_code
from jobfleet.store import JobRecord, StatusUpdate, SubjobRecord
from jobfleet.workdir import (
    EXIT_CODE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    SUBMIT_SCRIPT,
    collect_outputs,
    prepare,
    read_exit_code,
    render_wrapper,
)

__all__ = [
    "CLAIM_FILE",
    "CLAIM_GRACE",
    "LOST_LAUNCHING",
    "LOST_NO_EXIT_CODE",
    "PID_FILE",
    "LocalDriver",
    "process_start_time",
]

log = logging.getLogger("jobfleet.fleet.localrunner")

CLAIM_FILE = "__JOBFLEET_CLAIM__"
PID_FILE = "__JOBFLEET_PID__"
#: Seconds a claim may exist without pid file before the unit counts as lost.
CLAIM_GRACE = 60.0
LOST_NO_EXIT_CODE = "lost: process ended without an exit code"
LOST_LAUNCHING = "lost: runner died while launching"
#: How long to wait for a unit being launched right now to get its pid file (cancel, resubmit).
_LAUNCH_WAIT = 5.0
#: How long a resubmission waits for a previous attempt's process to go after SIGTERM.
_STOP_WAIT = 10.0
_CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
_CLEAN_ENV_KEYS = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_OPTIONS = ("max_processes", "clean_env")


def process_start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or ``None`` if it is gone.

    A zombie counts as gone: it has ended, only nobody has reaped it yet.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _start_time_without_proc(pid)
    # The command name (field 2) is in parentheses and may itself contain ") ".
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 counted from 1, minus the two fields before ")"


def _start_time_without_proc(pid: int) -> str | None:
    """Fallback where /proc is unreadable: alive or not, without a start time to compare."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?"


@dataclass(frozen=True)
class _PidInfo:
    pid: int
    start_time: str

    def alive(self) -> bool:
        now = process_start_time(self.pid)
        return now is not None and (now == self.start_time or "?" in (now, self.start_time))


def _read_pid_file(workdir: Path) -> _PidInfo | None:
    try:
        text = (workdir / PID_FILE).read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        log.warning("%s holds %r, not '<pid> <start time>'", workdir / PID_FILE, text[:40])
        return _PidInfo(pid=0, start_time="")
    return _PidInfo(int(parts[0]), parts[1])


def _write_pid_file(workdir: Path, pid: int) -> None:
    start = process_start_time(pid) or "?"
    tmp = workdir / f"{PID_FILE}.tmp"
    tmp.write_text(f"{pid} {start}\n", encoding="ascii")
    os.replace(tmp, workdir / PID_FILE)  # readers see all of it or nothing


def _claim(workdir: Path) -> bool:
    """Atomically take the right to launch the unit in ``workdir``; False if someone has it."""
    try:
        fd = os.open(workdir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"{os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)
    return True


def _claim_age(workdir: Path) -> float | None:
    try:
        return time.time() - (workdir / CLAIM_FILE).stat().st_mtime
    except FileNotFoundError:
        return None


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _wait_for_pid_file(workdir: Path, timeout: float) -> _PidInfo | None:
    deadline = time.monotonic() + timeout
    while (info := _read_pid_file(workdir)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return info


def _max_processes(options: Mapping[str, Any]) -> int:
    value = options.get("max_processes", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackendOptionsError(
            f"backend 'local': option 'max_processes': an integer >= 1 is required, got {value!r}"
        )
    return value


class LocalDriver:
    """Driver of backend ``local``; options ``max_processes`` (default 1) and ``clean_env``.

    ``max_processes`` limits how many units of one job run at once (each job
    keeps the value it was submitted with). ``clean_env=True`` runs units with
    only ``PATH=/usr/local/bin:/usr/bin:/bin`` and a few identity variables.
    """

    name = "local"
    poll_interval = 0.5

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise BackendOptionsError(
                f"backend 'local': unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(_OPTIONS)})"
            )
        self.max_processes = _max_processes(options)
        self.clean_env = bool(options.get("clean_env", False))
        self._jobs = JobCache()
        # Processes this runner launched, so it can reap them and learn how they died.
        self._children: dict[tuple[int, int], subprocess.Popen[bytes]] = {}

    def __repr__(self) -> str:
        return f"LocalDriver(max_processes={self.max_processes})"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if not Path("/bin/bash").exists():
            return False, "/bin/bash not found"
        return True, ""

    # -- submit ------------------------------------------------------------------------------

    def submit(self, job: Job, units: Sequence[Job], record: RecordSubmitted) -> None:
        """Prepare the units' working directories; they run once a runner polls."""
        batch: list[tuple[int, str]] = []
        for unit in units:
            self._forget_previous_attempt(unit.working_dir)
            prepare(unit, self.render_script(unit))
            batch.append((subjob_id_of(unit), "local"))
            if len(batch) >= 100:  # commit in chunks so progress shows and little is redone
                record(batch)
                batch = []
        if batch:
            record(batch)

    def render_script(self, unit: Job) -> str:
        return render_wrapper(unit)

    def _forget_previous_attempt(self, workdir: Path) -> None:
        """Remove a previous attempt's claim and pid file, stopping its process if still there."""
        if (workdir / CLAIM_FILE).exists():
            info = _wait_for_pid_file(workdir, _LAUNCH_WAIT)
            if info is not None and info.pid and info.alive():
                # A cancelled attempt still shutting down must not write its exit code
                # into the new attempt's directory.
                log.info("%s: stopping the previous attempt (pid %d)", workdir, info.pid)
                _signal_group(info.pid, signal.SIGTERM)
                deadline = time.monotonic() + _STOP_WAIT
                while info.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if info.alive():
                    _signal_group(info.pid, signal.SIGKILL)
        for name in (PID_FILE, CLAIM_FILE, EXIT_CODE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (workdir / name).unlink()

    # -- poll (the runner) -------------------------------------------------------------------

    def poll(
        self, job_records: Mapping[int, JobRecord], active: Sequence[SubjobRecord]
    ) -> list[StatusUpdate]:
        """Check running units, adopt or fail orphans, launch queued units up to the limit."""
        self._reap()
        updates: list[StatusUpdate] = []
        running: dict[int, int] = {}
        queued: list[tuple[SubjobRecord, Job]] = []
        for rec in active:
            job_record = job_records.get(rec.job_id)
            if job_record is None:
                continue
            unit = self._jobs.unit(job_record, rec.subjob_id)
            update, is_running = self._check(rec, unit)
            if update is not None:
                updates.append(update)
            if is_running:
                running[rec.job_id] = running.get(rec.job_id, 0) + 1
            elif update is None and not (unit.working_dir / CLAIM_FILE).exists():
                queued.append((rec, unit))
        for rec, unit in queued:
            limit = self._limit(job_records[rec.job_id])
            if running.get(rec.job_id, 0) >= limit:
                continue
            update = self._launch(rec, unit)
            if update is not None:
                updates.append(update)
                if update.status == "running":
                    running[rec.job_id] = running.get(rec.job_id, 0) + 1
        return updates

    def _limit(self, job_record: JobRecord) -> int:
        try:
            return _max_processes(job_record.backend_options)
        except BackendOptionsError:
            return self.max_processes

    def _reap(self) -> None:
        # Reap our own finished children, so they neither linger as zombies nor lose
        # the return code that tells how a wrapper died when it wrote no exit code.
        for proc in self._children.values():
            proc.poll()

    def _check(self, rec: SubjobRecord, unit: Job) -> tuple[StatusUpdate | None, bool]:
        """What became of a launched (or launching) unit; ``(update, still running)``."""
        workdir = unit.working_dir
        info = _read_pid_file(workdir)
        if info is None:
            age = _claim_age(workdir)
            if age is not None and age > CLAIM_GRACE:
                return self._failed(rec, None, LOST_LAUNCHING), False
            return None, age is not None  # launching right now counts as running
        if info.pid and info.alive():
            if rec.status == "running":
                return None, True
            return StatusUpdate(rec.job_id, rec.subjob_id, "running"), True
        return self._ended(rec, unit), False

    def _ended(self, rec: SubjobRecord, unit: Job) -> StatusUpdate:
        key = (rec.job_id, rec.subjob_id)
        child = self._children.pop(key, None)
        exit_code = read_exit_code(unit.working_dir)
        if exit_code is None and child is not None and child.returncode is None:
            # It died after this poll reaped; it is gone already, so this returns at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1.0)
        if exit_code is None and child is not None and child.returncode is not None:
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
        workdir = unit.working_dir
        if not _claim(workdir):
            return None  # another runner (or a cancel) got there first
        try:
            with (
                open(workdir / STDOUT_FILE, "wb") as out,
                open(workdir / STDERR_FILE, "wb") as err,
            ):
                proc = subprocess.Popen(
                    ["/bin/bash", SUBMIT_SCRIPT],
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=self._environment(),
                    start_new_session=True,  # survives the runner; killable as a group
                )
        except OSError as err:
            log.warning("%s: could not start: %s", unit.name, err)
            return self._failed(rec, None, f"could not start: {err}")
        _write_pid_file(workdir, proc.pid)
        self._children[(rec.job_id, rec.subjob_id)] = proc
        log.info("%s: started (pid %d)", unit.name, proc.pid)
        return StatusUpdate(rec.job_id, rec.subjob_id, "running")

    def _environment(self) -> dict[str, str] | None:
        if not self.clean_env:
            return None
        env = {key: os.environ[key] for key in _CLEAN_ENV_KEYS if key in os.environ}
        env["PATH"] = _CLEAN_PATH
        return env

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self, job_records: Mapping[int, JobRecord], records: Sequence[SubjobRecord]) -> None:
        """Block never-launched units for good, SIGTERM the process groups of launched ones."""
        for rec in records:
            job_record = job_records.get(rec.job_id)
            if job_record is None:
                continue
            workdir = self._jobs.unit(job_record, rec.subjob_id).working_dir
            if not workdir.is_dir() or _claim(workdir):
                continue  # never launched, and now no runner ever will
            info = _wait_for_pid_file(workdir, _LAUNCH_WAIT)
            if info is not None and info.pid and info.alive():
                log.info("%s: sending SIGTERM to process group %d", workdir, info.pid)
                _signal_group(info.pid, signal.SIGTERM)


register_driver("local", LocalDriver, needs_runner=True)

"""The files through which local units are launched exactly once and found again after a crash.

Both are files every unit has anyway (creating files is most of what a trivial
unit costs), in the unit's working directory:

``stdout`` (the claim)
    created with ``O_CREAT | O_EXCL`` by the runner that launches the unit,
    which hands it to the process as its standard output. Only the runner that
    creates it launches, so two runners do not both start the unit in the
    normal course of things. Preparing an attempt removes it.
``__BACKEND_CMD_EXIT_STATUS__`` (the commit point, then the result)
    created with ``O_EXCL`` (bash ``noclobber``) BY THE UNIT ITSELF, holding
    ``"running <pid>"``: it is the first thing the unit's wrapper script does,
    before its setup and command (``render_wrapper(..., start_marker=True)``).
    Of any number of launches of one attempt, only the one that creates the
    file runs the command; the others exit with :data:`LOST_RACE_EXIT` having
    run nothing. So no such file means the command never ran, and a claim left
    without one (a runner killed between claiming and launching) may safely be
    launched again. When the command ends, the wrapper replaces the content
    with the exit code, as every backend's wrapper writes it. A cancel creates
    the file first (``"cancel ..."``), so no launch ever runs the unit.

    While the unit runs, the file's mtime tells it from an unrelated process
    that got the same pid later: the unit started before it wrote the file, a
    later process after (its start time is field 22 of ``/proc/<pid>/stat``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from jobfleet.workdir import CANCEL_MARKER, EXIT_CODE_FILE, RUNNING_MARKER, STDOUT_FILE

__all__ = [
    "CLAIM_FILE",
    "LOST_RACE_EXIT",
    "STATE_FILE",
    "TIMEOUT_FILE",
    "UnitState",
    "cancel_unit",
    "claim",
    "claim_age",
    "forget_attempt",
    "process_started_at",
    "read_state",
    "reopen_claim",
    "signal_group",
    "state_age",
    "take_for_cancel",
    "terminate_for_walltime",
    "wait_for_start",
]

log = logging.getLogger("jobfleet.fleet.unitfiles")

#: The claim is the unit's stdout (:data:`jobfleet.workdir.STDOUT_FILE`), created exclusively.
CLAIM_FILE = STDOUT_FILE
#: The commit point is the exit code file, created exclusively by the unit as it starts.
STATE_FILE = EXIT_CODE_FILE
#: Exit code of a launch that found the commit point taken: it ran nothing.
LOST_RACE_EXIT = 75
#: Written into a unit's working directory when it is stopped at its walltime, so that a
#: runner taking over knows why it ended.
TIMEOUT_FILE = "__JOBFLEET_TIMEOUT__"
#: How long to wait for a unit being launched right now to write its state file.
_LAUNCH_WAIT = 5.0
#: How long a new attempt waits for the previous attempt's process to go after SIGTERM.
_STOP_WAIT = 10.0
#: Seconds a process may seem to have started after it wrote the state file and still
#: be the unit (start times count in clock ticks); a pid comes round again much later.
_START_SLACK = 1.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or ``None`` if it is gone.

    A zombie counts as gone: it has ended, only nobody has reaped it yet. Where
    ``/proc`` cannot be read, a live process has start time 0 (it may be the unit).
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _started_at_without_proc(pid)
    # The command name (field 2) is in parentheses and may itself contain ") ".
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X") or not fields[19].isdigit():
        return None
    # Field 22 (counted from 1, minus the two fields before ")") is in ticks since boot.
    booted_at = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted_at + int(fields[19]) / _CLOCK_TICKS


def _started_at_without_proc(pid: int) -> float | None:
    """Fallback where /proc is unreadable: alive or not, without a start time to compare."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0.0


@dataclass(frozen=True)
class UnitState:
    """What a unit's state file says, and when it was last written (its mtime).

    Exactly one of: ``pid > 0`` (running, or died without an exit code),
    ``exit_code`` set (ended), ``cancelled``, or none of them while the file is
    being written (:attr:`settled` is False).
    """

    written_at: float
    pid: int = 0
    exit_code: int | None = None
    cancelled: bool = False

    @property
    def settled(self) -> bool:
        return self.pid > 0 or self.exit_code is not None or self.cancelled

    def alive(self) -> bool:
        """Whether the unit's process still runs (not some later process with its pid)."""
        if self.pid <= 0:
            return False
        started_at = process_started_at(self.pid)
        return started_at is not None and started_at <= self.written_at + _START_SLACK


def read_state(workdir: Path) -> UnitState | None:
    """The unit's state file, ``None`` if there is none (the unit never started)."""
    try:
        with open(workdir / STATE_FILE, "rb") as handle:
            text = handle.read().decode("ascii", errors="replace")
            written_at = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None
    parts = text.split()
    if not text.endswith("\n") or not parts:  # being written
        return UnitState(written_at)
    if parts[0] == CANCEL_MARKER:
        return UnitState(written_at, cancelled=True)
    if parts[0] == RUNNING_MARKER and len(parts) == 2 and parts[1].isdigit():
        return UnitState(written_at, pid=int(parts[1]))
    with contextlib.suppress(ValueError):
        if len(parts) == 1:
            return UnitState(written_at, exit_code=int(parts[0]))
    return UnitState(written_at)  # not ours to read: taken as still being written


def state_age(workdir: Path) -> float:
    """Seconds since the state file was last written (0 without one)."""
    try:
        return time.time() - (workdir / STATE_FILE).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def claim(workdir: str | os.PathLike[str]) -> int | None:
    """Take the unit in ``workdir`` to launch it: a descriptor of its new stdout, or ``None``.

    ``None`` means another runner has claimed it. The descriptor appends, so a
    launch again under the same claim (:func:`reopen_claim`) keeps what is there.
    """
    try:
        return os.open(
            os.path.join(workdir, CLAIM_FILE),
            os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND,
            0o644,
        )
    except FileExistsError:
        return None


def reopen_claim(workdir: str | os.PathLike[str]) -> int:
    """The stdout of a unit claimed earlier, to launch it again; restarts the claim's grace."""
    fd = os.open(os.path.join(workdir, CLAIM_FILE), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    os.utime(fd)
    return fd


def claim_age(workdir: Path) -> float | None:
    """Seconds since the unit was claimed (meaningful while it has no state file); ``None``: not."""
    try:
        return time.time() - (workdir / CLAIM_FILE).stat().st_mtime
    except FileNotFoundError:
        return None


def take_for_cancel(workdir: Path) -> bool:
    """Take the commit point for a cancel: True if the unit never ran and now never will."""
    try:
        fd = os.open(workdir / STATE_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"{CANCEL_MARKER} {os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)
    return True


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the unit's process group (its pid: every unit leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def wait_for_start(workdir: Path, timeout: float) -> UnitState | None:
    """The unit's settled state, waiting up to ``timeout`` s for a launch under way."""
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(workdir)
        if (state is not None and state.settled) or time.monotonic() >= deadline:
            return state
        time.sleep(0.02)


def cancel_unit(workdir: Path) -> None:
    """Block a never-launched unit for good, or SIGTERM the process group of a launched one."""
    if not workdir.is_dir() or take_for_cancel(workdir):
        return  # never ran, and now no launch ever will
    state = wait_for_start(workdir, _LAUNCH_WAIT)
    if state is not None and state.alive():
        log.info("%s: sending SIGTERM to process group %d", workdir, state.pid)
        signal_group(state.pid, signal.SIGTERM)


def forget_attempt(workdir: Path) -> None:
    """Remove an attempt's claim, state and timeout marker, stopping its process if it runs."""
    state = read_state(workdir)
    if state is None and (workdir / CLAIM_FILE).exists():  # claimed: maybe starting now
        state = wait_for_start(workdir, _LAUNCH_WAIT)
    if state is not None and state.alive():
        # A cancelled attempt still shutting down must not write its exit code
        # into the new attempt's directory.
        log.info("%s: stopping the previous attempt (pid %d)", workdir, state.pid)
        signal_group(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_WAIT
        while state.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if state.alive():
            signal_group(state.pid, signal.SIGKILL)
    for name in (CLAIM_FILE, STATE_FILE, TIMEOUT_FILE):
        with contextlib.suppress(FileNotFoundError):
            (workdir / name).unlink()


def terminate_for_walltime(workdir: Path, pid: int, walltime: int, kill_after: float) -> None:
    """Stop a unit past its walltime: mark it and SIGTERM it, SIGKILL ``kill_after`` s later."""
    marker = workdir / TIMEOUT_FILE
    try:
        stopped_for = time.time() - marker.stat().st_mtime
    except FileNotFoundError:
        log.info("%s: walltime of %d s reached, terminating it", workdir, walltime)
        marker.write_text(f"walltime {walltime} s\n", encoding="utf-8")
        signal_group(pid, signal.SIGTERM)
        return
    if stopped_for > kill_after:
        signal_group(pid, signal.SIGKILL)

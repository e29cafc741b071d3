"""The files through which local units are launched exactly once and found again after a crash.

Both live in the unit's working directory, and neither costs a file of its own
beyond what a unit needs anyway (creating files is most of a trivial unit's cost):

``stdout`` (the claim)
    created with ``O_CREAT | O_EXCL`` by the runner that launches the unit,
    which hands it to the process as its standard output. Only the runner that
    creates it launches, so two runners do not both start the unit in the
    normal course of things. Preparing an attempt removes it.
``__JOBFLEET_PID__`` (the commit point)
    ``"<pid>"``, created with ``O_EXCL`` (bash ``noclobber``) BY THE UNIT
    ITSELF: it is the first thing the unit's wrapper script does, before its
    setup and command (``render_wrapper(..., pid_file=PID_FILE)``). Of any
    number of launches of one attempt, only the one that creates the file runs
    the command; the others exit with :data:`LOST_RACE_EXIT` having run nothing.
    So no pid file means the command never ran, and a claim left without one (a
    runner killed between claiming and launching) may safely be launched again.
    A cancel creates the file first (``"cancel ..."``), so no launch ever runs
    the unit. The file's mtime tells the unit from an unrelated process that
    got the same pid later: the unit started before it wrote the file, a later
    process after (its start time is field 22 of ``/proc/<pid>/stat``). The
    unit does not look its own start time up: that cost a tenth of what a
    trivial unit's bash costs.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from jobfleet.workdir import STDOUT_FILE

__all__ = [
    "CLAIM_FILE",
    "LOST_RACE_EXIT",
    "PID_FILE",
    "PidInfo",
    "claim",
    "claim_age",
    "pid_file_age",
    "process_started_at",
    "read_pid_file",
    "reopen_claim",
    "signal_group",
    "take_for_cancel",
    "wait_for_pid_file",
]

#: The claim is the unit's stdout (:data:`jobfleet.workdir.STDOUT_FILE`), created exclusively.
CLAIM_FILE = STDOUT_FILE
PID_FILE = "__JOBFLEET_PID__"
#: Exit code of a launch that found the pid file taken: it ran nothing.
LOST_RACE_EXIT = 75
_CANCEL = "cancel"
#: Seconds a process may seem to have started after its pid file was written and still
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
class PidInfo:
    """What a pid file says; ``pid == 0`` while the unit is still writing it, or for a cancel.

    ``written_at`` is the file's mtime.
    """

    pid: int
    written_at: float
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return self.pid > 0

    def alive(self) -> bool:
        """Whether the unit's process still runs (not some later process with its pid)."""
        if not self.complete:
            return False
        started_at = process_started_at(self.pid)
        return started_at is not None and started_at <= self.written_at + _START_SLACK


def read_pid_file(workdir: Path) -> PidInfo | None:
    """The unit's pid file, ``None`` if there is none; a half-written one has ``pid == 0``."""
    try:
        with open(workdir / PID_FILE, "rb") as handle:
            text = handle.read().decode("ascii", errors="replace")
            written_at = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None
    if text.startswith(_CANCEL):
        return PidInfo(pid=0, written_at=written_at, cancelled=True)
    # Older versions wrote "<pid> <start time>": the pid comes first in both.
    parts = text.split()
    if not parts or not parts[0].isdigit() or not text.endswith("\n"):
        return PidInfo(pid=0, written_at=written_at)
    return PidInfo(int(parts[0]), written_at)


def pid_file_age(workdir: Path) -> float:
    """Seconds since the pid file was created (0 without one)."""
    try:
        return time.time() - (workdir / PID_FILE).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def claim(workdir: Path) -> int | None:
    """Take the unit in ``workdir`` to launch it: a descriptor of its new stdout, or ``None``.

    ``None`` means another runner has claimed it. The descriptor appends, so a
    launch again under the same claim (:func:`reopen_claim`) keeps what is there.
    """
    try:
        return os.open(
            workdir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644
        )
    except FileExistsError:
        return None


def reopen_claim(workdir: Path) -> int:
    """The stdout of a unit claimed earlier, to launch it again; restarts the claim's grace."""
    fd = os.open(workdir / CLAIM_FILE, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    os.utime(fd)
    return fd


def claim_age(workdir: Path) -> float | None:
    """Seconds since the unit was claimed (meaningful while it has no pid file); ``None``: not."""
    try:
        return time.time() - (workdir / CLAIM_FILE).stat().st_mtime
    except FileNotFoundError:
        return None


def take_for_cancel(workdir: Path) -> bool:
    """Take the commit point for a cancel: True if the unit never ran and now never will."""
    try:
        fd = os.open(workdir / PID_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"{_CANCEL} {os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)
    return True


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the unit's process group (its pid: every unit leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def wait_for_pid_file(workdir: Path, timeout: float) -> PidInfo | None:
    """The unit's complete pid file, waiting up to ``timeout`` s for a launch under way."""
    deadline = time.monotonic() + timeout
    while True:
        info = read_pid_file(workdir)
        done = info is not None and (info.complete or info.cancelled)
        if done or time.monotonic() >= deadline:
            return info
        time.sleep(0.02)

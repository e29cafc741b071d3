"""The files through which local units are launched exactly once and found again after a crash.

Both live in the unit's working directory:

``__JOBFLEET_CLAIM__``
    created with ``O_CREAT | O_EXCL`` before a launch (content ``launch ...``),
    or by a cancel (``cancel ...``) so that no runner launches the unit. Only
    the process that creates it launches, so two runners do not both start
    the unit in the normal course of things.
``__JOBFLEET_PID__``
    ``"<pid> <start time>"``, created with ``O_EXCL`` (bash ``noclobber``) BY
    THE UNIT ITSELF, before it runs its command (see :data:`LAUNCH_SHIM`). This
    is the commit point: of any number of launches of one attempt, only the
    one that creates the file runs the command; the others exit with
    :data:`LOST_RACE_EXIT` having run nothing. So no pid file means the
    command never ran, and a claim left without one (a runner killed between
    claiming and launching) may safely be launched again. The start time
    (field 22 of ``/proc/<pid>/stat``) tells the unit from an unrelated
    process that got the same pid later.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from jobfleet.workdir import SUBMIT_SCRIPT

__all__ = [
    "CLAIM_FILE",
    "LAUNCH_SHIM",
    "LOST_RACE_EXIT",
    "PID_FILE",
    "PidInfo",
    "claim",
    "claim_age",
    "claim_is_cancel",
    "pid_file_age",
    "process_start_time",
    "read_pid_file",
    "refresh_claim",
    "signal_group",
    "wait_for_pid_file",
]

CLAIM_FILE = "__JOBFLEET_CLAIM__"
PID_FILE = "__JOBFLEET_PID__"
#: Exit code of a launch that found the pid file taken: it ran nothing.
LOST_RACE_EXIT = 75

#: Run as ``bash -c LAUNCH_SHIM`` in the working directory: record own pid and start time
#: (exclusively), then become the wrapper script, keeping pid and start time.
LAUNCH_SHIM = f"""\
start='?'
if s=$(< /proc/$$/stat) 2>/dev/null; then s=${{s##*) }}; set -- $s; start=${{20:-?}}; fi
set -C
{{ printf '%s %s\\n' "$$" "$start" > {PID_FILE}; }} 2>/dev/null || exit {LOST_RACE_EXIT}
set +C
exec /bin/bash {SUBMIT_SCRIPT}
"""


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
class PidInfo:
    """What a pid file says; ``pid == 0`` while the unit is still writing it."""

    pid: int
    start_time: str

    @property
    def complete(self) -> bool:
        return self.pid > 0

    def alive(self) -> bool:
        if not self.complete:
            return False
        now = process_start_time(self.pid)
        return now is not None and (now == self.start_time or "?" in (now, self.start_time))


def read_pid_file(workdir: Path) -> PidInfo | None:
    """The unit's pid file, ``None`` if there is none; a half-written one has ``pid == 0``."""
    try:
        text = (workdir / PID_FILE).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not text.endswith("\n"):
        return PidInfo(pid=0, start_time="")
    return PidInfo(int(parts[0]), parts[1])


def pid_file_age(workdir: Path) -> float:
    """Seconds since the pid file was created (0 without one)."""
    try:
        return time.time() - (workdir / PID_FILE).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def claim(workdir: Path, purpose: str = "launch") -> bool:
    """Atomically take the unit in ``workdir`` (to launch or cancel it); False if taken."""
    try:
        fd = os.open(workdir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"{purpose} {os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)
    return True


def refresh_claim(workdir: Path) -> None:
    """Restart a claim's grace period (before launching again under an old claim)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(workdir / CLAIM_FILE)


def claim_age(workdir: Path) -> float | None:
    """Seconds since the claim was made (or refreshed); ``None`` without a claim."""
    try:
        return time.time() - (workdir / CLAIM_FILE).stat().st_mtime
    except FileNotFoundError:
        return None


def claim_is_cancel(workdir: Path) -> bool:
    """Whether the claim was made by a cancel (the unit must never be launched)."""
    try:
        return (
            (workdir / CLAIM_FILE)
            .read_text(encoding="ascii", errors="replace")
            .startswith("cancel")
        )
    except FileNotFoundError:
        return False


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the unit's process group (its pid: every unit leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def wait_for_pid_file(workdir: Path, timeout: float) -> PidInfo | None:
    """The unit's complete pid file, waiting up to ``timeout`` s for a launch under way."""
    deadline = time.monotonic() + timeout
    while True:
        info = read_pid_file(workdir)
        if (info is not None and info.complete) or time.monotonic() >= deadline:
            return info
        time.sleep(0.02)

"""Fault wrappers around the real scheduler commands, and what the fault tests share.

:func:`install_wrappers` writes one bash script per command into a directory put
first on ``PATH``. Each call fails with probability ``rate`` (never more than
``max_streak`` times in a row, so jobfleet's retries can get through), printing
the message and exit status the real tool gives for that failure; otherwise it
``exec``\\ s the real command. A fault with ``after=True`` sometimes runs the real
command first and then reports the failure: the scheduler has the job, the
caller never hears of it (a lost reply). Every injected failure is one line
``COMMAND KIND`` in ``failures.log``, so tests count what they injected.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._support import marker_lines

__all__ = [
    "SGE_HOST",
    "Fault",
    "Wrappers",
    "install_wrappers",
    "marker_lines",
    "sge_faults",
    "sge_tasks",
    "slurm_faults",
    "slurm_tasks",
    "unique_name",
    "write_spec",
]

SGE_HOST = os.uname().nodename.split(".")[0]


@dataclass(frozen=True)
class Fault:
    """How one wrapped command misbehaves."""

    message: str
    code: int = 1
    rate: float = 0.3
    #: Half of the failures run the real command first (its reply is lost).
    after: bool = False
    max_streak: int = 2
    #: Replace this argument before running the real command (e.g. hide finished jobs).
    rewrite: tuple[str, str] | None = None
    #: The first call always fails, this way (``before`` or ``after``): every run meets it.
    first: str | None = None


def slurm_faults(rate: float = 0.3) -> dict[str, Fault]:
    """Slurm's own words when slurmctld / slurmdbd do not answer in time."""
    timeout = "Socket timed out on send/recv operation"
    return {
        "sbatch": Fault(
            f"sbatch: error: Batch job submission failed: {timeout}", 1, rate, True, first="after"
        ),
        "squeue": Fault(f"slurm_load_jobs error: {timeout}", 1, rate),
        "sacct": Fault(
            "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent "
            "connection to host:localhost:6819: Connection refused\n"
            "sacct: error: Problem talking to the database: Connection refused",
            1,
            rate,
        ),
        "scancel": Fault(f"scancel: error: Kill job error on job id: {timeout}", 1, rate),
        "scontrol": Fault(f"slurm_load_ctl_conf error: {timeout}", 1, rate),
    }


def sge_faults(rate: float = 0.3) -> dict[str, Fault]:
    """Grid Engine's words when the qmaster does not answer (commlib errors)."""
    commlib = (
        "error: commlib error: got select error (Connection refused)\n"
        f'unable to send message to qmaster using port 6444 on host "{SGE_HOST}": got send error'
    )
    qsub = f"{commlib}\nUnable to run job: failed receiving gdi request.\nExiting."
    return {
        "qsub": Fault(qsub, 1, rate, True, first="after"),
        **{name: Fault(commlib, 1, rate) for name in ("qstat", "qacct", "qdel", "qconf")},
    }


_SCRIPT = """#!/bin/bash
# fault wrapper of {name} (tests/faults/_wrapped.py)
real={real}
state={state}
{rewrite}
exec 8>>"$state/lock"
flock 8
streak=$(cat "$state/{name}.streak" 2>/dev/null || echo 0)
calls=$(cat "$state/{name}.calls" 2>/dev/null || echo 0)
echo $((calls + 1)) > "$state/{name}.calls"
fail=0 kind=before
if [ "$streak" -lt {max_streak} ] && [ $((RANDOM % 10000)) -lt {threshold} ]; then fail=1; fi
if {after} && [ $((RANDOM % 2)) = 0 ]; then kind=after; fi
if [ "$calls" = 0 ] && [ -n "{first}" ]; then fail=1 kind={first}; fi
echo $(( fail ? streak + 1 : 0 )) > "$state/{name}.streak"
flock -u 8
exec 8>&-
[ $fail = 1 ] || exec "$real" "$@"
if [ $kind = after ]; then "$real" "$@" > /dev/null 2>&1 || true; fi
echo "{name} $kind" >> "$state/failures.log"
printf '%s\\n' {message} >&2
exit {code}
"""

_REWRITE = """args=()
for a in "$@"; do [ "$a" = {old} ] && a={new}; args+=("$a"); done
set -- "${{args[@]}}"
"""


class Wrappers:
    """The wrapper directory and its failure log."""

    def __init__(self, bin_dir: Path, state: Path) -> None:
        self.bin_dir = bin_dir
        self.state = state

    def failures(self) -> collections.Counter[tuple[str, str]]:
        """Injected failures by ``(command, kind)``; kind is ``before`` or ``after``."""
        log = self.state / "failures.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return collections.Counter(tuple(line.split(" ", 1)) for line in lines)  # type: ignore[misc]

    def total(self) -> int:
        return sum(self.failures().values())


def install_wrappers(
    root: Path, faults: Mapping[str, Fault], monkeypatch: pytest.MonkeyPatch
) -> Wrappers:
    """Write the wrappers under ``root`` and put them first on ``PATH`` (for this test)."""
    bin_dir, state = root / "bin", root / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    for name, fault in faults.items():
        real = shutil.which(name)
        assert real is not None, f"{name} not found on PATH"
        rewrite = ""
        if fault.rewrite is not None:
            old, new = fault.rewrite
            rewrite = _REWRITE.format(old=shlex.quote(old), new=shlex.quote(new))
        script = bin_dir / name
        script.write_text(
            _SCRIPT.format(
                name=name,
                real=shlex.quote(real),
                state=shlex.quote(str(state)),
                rewrite=rewrite,
                max_streak=fault.max_streak,
                threshold=round(fault.rate * 10000),
                after="true" if fault.after else "false",
                first=fault.first or "",
                message=shlex.quote(fault.message),
                code=fault.code,
            )
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return Wrappers(bin_dir, state)


# -- jobs and what the schedulers recorded -------------------------------------------------------

SPEC = """
name = "{name}"
cmd = ["bash", "-c", {script!r}, "unit"]
working_dir = "{workdir}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "{backend}"
poll_interval = {poll}
{options}
"""


def unique_name(prefix: str) -> str:
    """A job name no earlier run used (the real schedulers' records outlive a test)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_spec(
    path: Path,
    name: str,
    backend: str,
    n: int,
    script: str,
    *,
    options: str = "",
    poll: float = 0.2,
) -> Path:
    """A spec running bash ``script`` (``$1`` is the subjob id) in ``n`` subjobs."""
    path.write_text(
        SPEC.format(
            name=name,
            script=script,
            workdir=path.parent / name,
            n=n,
            backend=backend,
            poll=poll,
            options=options,
        )
    )
    return path


def _real(command: str) -> str:
    # Ask the scheduler itself, past any wrapper left on PATH by the test.
    path = os.environ.get("PATH", "").split(os.pathsep)
    for directory in path:
        candidate = Path(directory) / command
        if candidate.exists() and "fault wrapper" not in candidate.read_text(errors="replace"):
            return str(candidate)
    raise AssertionError(f"{command} not found")


def slurm_tasks(job_name: str) -> dict[str, list[str]]:
    """Array task index -> the array job ids Slurm's accounting holds it under."""
    out = subprocess.run(
        [_real("sacct"), "--noheader", "--parsable2", "--allocations", "--starttime=now-1days",
         f"--name={job_name}", "--format=JobID,State"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    tasks: dict[str, list[str]] = collections.defaultdict(list)
    for line in out.splitlines():
        match = re.fullmatch(r"(\d+)_(\d+)", line.split("|")[0])
        if match:
            tasks[match.group(2)].append(match.group(1))
    return dict(tasks)


def sge_tasks(job_name: str) -> dict[str, list[str]]:
    """Array task index -> the job numbers Grid Engine's accounting holds it under."""
    proc = subprocess.run(
        [_real("qacct"), "-j", job_name], capture_output=True, text=True, timeout=60, check=False
    )
    tasks: dict[str, list[str]] = collections.defaultdict(list)
    number = ""
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "jobnumber":
            number = value.strip()
        elif key == "taskid":
            tasks[value.strip()].append(number)
    return dict(tasks)

"""Running the conformance jobs on one backend, as a user would.

:func:`run_backend` writes four specs (a job of several subjobs with awkward
arguments, one whose subjobs exit 3 and die of SIGKILL, one outliving its
walltime, one cancelled while it runs). Through the command line (``"cli"``)
it submits them with ``jobfleet submit``, watches them together with one
``jobfleet watch``, cancels the fourth once it runs (``jobfleet cancel``) and
reads every job back with ``jobfleet status --json``; through the library
(``"library"``) :mod:`conformance.library` does the same with
``Backend.submit`` / ``cancel`` and ``monitor_jobs``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.cases import AWKWARD_SUBJOBS, EXIT_CODE, FIXED_ARGS, Case

__all__ = ["JOBS", "PATHS", "Outcome", "run_backend"]

#: The four jobs, by role.
JOBS = {"ok": "conf-ok", "exit": "conf-exit", "timeout": "conf-timeout", "cancel": "conf-cancel"}
#: The ways in: the command line (store-driven fleet) and the caf.backends-style library.
PATHS = ("cli", "library")
#: Deadline of one backend's whole run (the Slurm timeout job alone takes 1-2 min).
DEADLINE = 300.0

# The program every job runs: it leaves a mark per run (pid) in MARKS, then does its part.
PROGRAM = """\
import os, sys, time
MARKS = {marks!r}
args = sys.argv[1:]
mode = args[0][5:] if args and args[0].startswith("mode:") else "ok"
tag = args[len({fixed!r})] if mode == "ok" else mode
with open(os.path.join(MARKS, tag), "a") as mark:
    mark.write(f"{{os.getpid()}}\\n")
if mode == "ok":
    data = b"\\0".join(os.fsencode(a) for a in args)
    with open("argv.bin", "wb") as out:
        out.write(data)
    with open("result.txt", "w") as out:
        out.write(f"{{len(data)}}\\n")
elif mode == "exit":
    sys.exit({exit_code})
elif mode == "kill":
    os.kill(os.getpid(), 9)
else:
    time.sleep(600)
    open(os.path.join(MARKS, tag + ".finished"), "w").close()
"""


@dataclass
class Outcome:
    """What one backend did with the four jobs."""

    case: Case
    path: str
    root: Path
    #: ``jobfleet status JOB --json`` of each job, by role.
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    #: Why the run could not finish (then the tests of this backend fail with it).
    error: str = ""

    @property
    def marks(self) -> Path:
        return self.root / "marks"

    def output_dir(self, role: str) -> Path:
        return self.root / "work" / JOBS[role] / "output"

    def subjobs(self, role: str) -> list[dict[str, Any]]:
        subjobs: list[dict[str, Any]] = self.status[role]["subjobs"]
        return subjobs

    def runs(self, tag: str) -> list[int]:
        """Pids of the program's runs that left mark ``tag``."""
        path = self.marks / tag
        return [int(line) for line in path.read_text().split()] if path.exists() else []


def _toml(value: Any) -> str:
    # JSON strings and lists are valid TOML basic strings and arrays.
    return json.dumps(value, ensure_ascii=False)


def _spec(case: Case, role: str) -> str:
    lines = [
        f"name = {_toml(JOBS[role])}",
        'cmd = ["python3", "conform.py"]',
        'sandbox = ["conform.py"]',
        f"working_dir = {_toml('work/' + JOBS[role])}",
    ]
    if role == "ok":
        lines += [f"args = {_toml(FIXED_ARGS)}", 'output_patterns = ["argv.bin", "result.txt"]']
        lines += ["[split]", f"arguments = {{ values = {_toml(AWKWARD_SUBJOBS)} }}"]
    elif role == "exit":
        lines += ["[split]", 'arguments = { values = [["mode:exit"], ["mode:kill"]] }']
    else:
        lines.append(f"args = {_toml(['mode:' + role])}")
    if role == "timeout":
        lines += ["[resources]", f"walltime = {_toml(case.walltime)}"]
    lines += ["[backend]", f"name = {_toml(case.backend)}", case.options]
    if case.backend != "local":  # the local runner polls often anyway and takes no such option
        lines.append("poll_interval = 0.5")
    return "\n".join(lines) + "\n"


def _jobfleet(env: Mapping[str, str], *args: str, timeout: float = 120.0) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "jobfleet.cli", *args],
        env=dict(env), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"jobfleet {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def _status(env: Mapping[str, str], role: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_jobfleet(env, "status", JOBS[role], "--json"))
    return document


def _until(condition: Any, deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _library(root: Path, env: Mapping[str, str], deadline: float) -> dict[str, Any]:
    tests = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
    with open(root / "library.log", "wb") as log:
        subprocess.run(
            [sys.executable, "-m", "conformance.library", str(root)],
            env={**env, "PYTHONPATH": pythonpath}, stdout=log, stderr=log, check=True,
            timeout=max(1.0, deadline - time.monotonic()),
        )  # fmt: skip
    status: dict[str, Any] = json.loads((root / "status.json").read_text(encoding="utf-8"))
    return status


def run_backend(case: Case, path: str, root: Path, env: Mapping[str, str]) -> Outcome:
    """Run the four jobs on ``case``'s backend under ``root``; never raises."""
    outcome = Outcome(case, path, root)
    start = time.monotonic()
    deadline = start + DEADLINE
    env = {**env, "JOBFLEET_DB": str(root / "jobfleet.db"), "JOBFLEET_LEASE_TTL": "5"}
    watcher: subprocess.Popen[bytes] | None = None
    outcome.marks.mkdir(parents=True)
    with open(root / "watch.log", "wb") as watch_log:
        try:
            program = PROGRAM.format(
                marks=str(outcome.marks), fixed=FIXED_ARGS, exit_code=EXIT_CODE
            )
            (root / "conform.py").write_text(program, encoding="utf-8")
            for role in JOBS:
                spec = root / f"{role}.toml"
                spec.write_text(_spec(case, role), encoding="utf-8")
            if path == "library":
                outcome.status = _library(root, env, deadline)
                return outcome
            for role in JOBS:
                _jobfleet(env, "submit", str(root / f"{role}.toml"))
            watcher = subprocess.Popen(
                [sys.executable, "-m", "jobfleet.cli", "watch", *JOBS.values(), "--quiet",
                 "--interval", "0.5"],
                env=env, stdout=watch_log, stderr=watch_log,
            )  # fmt: skip
            _until(
                lambda: (
                    outcome.runs("cancel")
                    and _status(env, "cancel")["subjobs"][0]["status"] == "running"
                ),
                deadline,
                "the job to cancel to run",
            )
            _jobfleet(env, "cancel", JOBS["cancel"])
            _until(lambda: watcher.poll() is not None, deadline, "jobfleet watch to end")
            outcome.status = {role: _status(env, role) for role in JOBS}
        except Exception as err:  # reported by every test of this backend
            outcome.error = f"{type(err).__name__}: {err}"
            log = root / ("library.log" if path == "library" else "watch.log")
            if log.exists():
                outcome.error += "\n" + log.read_text(errors="replace")[-3000:]
        finally:
            if watcher is not None and watcher.poll() is None:
                watcher.kill()
                watcher.wait()
            if outcome.error and path == "cli":  # leave nothing running on a real scheduler
                for name in JOBS.values():
                    with contextlib.suppress(Exception):
                        _jobfleet(env, "cancel", name)
            outcome.seconds = time.monotonic() - start
    return outcome

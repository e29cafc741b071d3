"""Starting a background runner: a detached ``jobfleet watch --quiet`` process.

Backends such as ``local`` only make progress while some process polls them
(the poller launches the processes). ``jobfleet submit`` without ``--watch``
must still return at once, so it leaves such a process behind.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RUNNER_LOG", "runner_command", "spawn_runner"]

log = logging.getLogger("jobfleet.fleet.runner")

#: File (in the job's working directory) that a background runner writes to.
RUNNER_LOG = "jobfleet-runner.log"


def runner_command(db_path: Path, job_refs: Sequence[str]) -> list[str]:
    """The command line of a background runner watching ``job_refs`` in store ``db_path``."""
    # The running interpreter, not whatever `jobfleet` is first on PATH: the runner
    # must be the same jobfleet as the one that submitted.
    return [
        sys.executable,
        "-m",
        "jobfleet.cli",
        "--db",
        str(db_path),
        "--log-level",
        "info",  # the runner's log shows launches, retries and hand-overs
        "watch",
        "--quiet",
        *job_refs,
    ]


def spawn_runner(db_path: Path, job_refs: Sequence[str], log_file: Path) -> int:
    """Start a detached runner (own session, no terminal); returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = runner_command(db_path, job_refs)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the terminal or the submitting shell
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    log.info(
        "started a background runner (pid %d) for job(s) %s; log: %s",
        proc.pid,
        ", ".join(job_refs),
        log_file,
    )
    return proc.pid

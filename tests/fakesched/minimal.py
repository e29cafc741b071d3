"""The smallest personality: a reference for writing real ones, used by the core's tests.

``fsub [-n N] [-C DIR] SCRIPT`` queues N copies of ``bash SCRIPT`` (index in
``$FAKE_INDEX``, from 1) and prints ``Submitted <number>``; ``fq [ID...]``
prints one JSON record per known job; ``fdel ID...`` cancels.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from fakesched.core import FakeScheduler, Task, job_environment

__all__ = ["COMMANDS", "DEFAULT_CONFIG", "transient_error"]

DEFAULT_CONFIG: Mapping[str, Any] = {"first_number": 100}


def fsub(fake: FakeScheduler, args: list[str]) -> int:
    count, cwd = 1, os.getcwd()
    while len(args) > 1 and args[0] in ("-n", "-C"):
        if args[0] == "-n":
            count = int(args[1])
        else:
            cwd = args[1]
        args = args[2:]
    if len(args) != 1:
        print("usage: fsub [-n N] [-C DIR] SCRIPT", file=sys.stderr)
        return 2
    tasks = [
        Task(
            argv=["bash", args[0]],
            cwd=cwd,
            env=job_environment(False, {"FAKE_INDEX": str(i + 1)}),
            stdout=os.path.join(cwd, f"out.{i + 1}"),
            stderr=os.path.join(cwd, f"out.{i + 1}"),
        )
        for i in range(count)
    ]
    jobs = fake.submit(tasks, lambda number, position: f"{number}.{position + 1}")
    print(f"Submitted {jobs[0].number}")
    return 0


def fq(fake: FakeScheduler, args: list[str]) -> int:
    for job in fake.jobs(args or None):
        fields = ("id", "state", "exit_code", "signal", "hold_reason", "cancelled", "error")
        print(json.dumps({k: getattr(job, k) for k in fields}))
    return 0


def fdel(fake: FakeScheduler, args: list[str]) -> int:
    for job in fake.cancel(args):
        print(f"cancelled {job.id}")
    return 0


COMMANDS: Mapping[str, Callable[[FakeScheduler, list[str]], int]] = {
    "fsub": fsub,
    "fq": fq,
    "fdel": fdel,
}


def transient_error(command: str) -> tuple[str, int]:
    return f"{command}: server busy, try again later", 75

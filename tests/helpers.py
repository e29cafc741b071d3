"""Helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(
    condition: Callable[[], Any], timeout: float = 30.0, step: float = 0.02, *, what: str = ""
) -> Any:
    """Wait for ``condition()`` to be truthy and return its value; fail the test after
    ``timeout`` seconds (no sleep-and-hope: every wait has a condition and a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(step)


def check_environment_only_when_inherited(
    backend: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, heartbeat: float = 0.1
) -> None:
    """Submit one job as is and one with ``inherit_env``: only the second sees our variable."""
    from jobfleet import Job, monitor_jobs

    monkeypatch.setenv("JF_ONLY_HERE", "submit host value")
    jobs = [Job(f"{backend.name}-env-default"), Job(f"{backend.name}-env-inherit")]
    for job in jobs:
        job.working_dir = tmp_path / job.name
        job.cmd = ["bash", "-c", 'printf "%s" "${JF_ONLY_HERE:-unset}"']
    jobs[1].backend_args = {"inherit_env": True}
    backend.submit(jobs)
    assert monitor_jobs(jobs, heartbeat=heartbeat) == 0
    assert [(j.working_dir / "stdout").read_text() for j in jobs] == ["unset", "submit host value"]


def calls_since(before: dict[str, int], name: str) -> int:
    """How often command ``name`` ran since ``before = command_calls()``."""
    from jobfleet.commands import command_calls

    return command_calls().get(name, 0) - before.get(name, 0)


def args_job(root: Any, name: str, script: str, n: int) -> Any:
    """A job running bash ``script`` in ``n`` subjobs; ``$1`` is the subjob's index."""
    from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, range_arguments

    job = Job(name)
    job.working_dir = root / name
    job.output_dir = root / f"{name}-out"
    job.cmd = ["bash", "-c", script, name]
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    return job


def value_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside a JSON-like ``value`` (``()`` first), for fuzzers that
    edit one place of a valid document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += value_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += value_paths(item, (*prefix, i))
    return found

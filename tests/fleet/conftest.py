"""Fixtures for the orchestration tests: a store, jobs built in code, waiting with deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from helpers import wait_until
from jobfleet.fleet import Fleet
from jobfleet.fleet.progress import JobProgress
from jobfleet.fleet.unitfiles import STATE_FILE, read_state
from jobfleet.job import Job
from jobfleet.store import Store


def run_until_ended(
    fleet: Fleet, job_ids: Sequence[int], timeout: float = 30.0
) -> dict[int, JobProgress]:
    """Watch steps until every job has ended (or fail at the deadline)."""
    state: dict[int, JobProgress] = {}

    def ended() -> bool:
        state.update(fleet.watch_step(job_ids))
        return all(p.ended for p in state.values())

    wait_until(ended, timeout=timeout, what=f"jobs {list(job_ids)} to end")
    return state


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "jobfleet.db") as opened:
        yield opened


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Job]:
    """A job running ``script`` (bash) in each of ``n`` subjobs; ``$1`` is the subjob id."""

    def make(name: str, script: str, n: int = 1, *, outputs: Sequence[str] = ()) -> Job:
        job = Job(name)
        job.working_dir = tmp_path / "work" / name
        job.output_dir = tmp_path / "out" / name
        job.cmd = ["bash", "-c", script, "unit"]
        job.output_patterns = list(outputs)
        for i in range(n):
            job.create_subjob(i, args=[i])
        return job

    return make


@pytest.fixture(autouse=True)
def _kill_leftover_units(tmp_path: Path) -> Iterator[None]:
    """Units run detached; stop whatever a failing test left running."""
    yield
    for path in tmp_path.rglob(STATE_FILE):
        state = read_state(path.parent)
        if state is not None and state.pid > 0:
            with contextlib.suppress(OSError):
                os.killpg(state.pid, signal.SIGKILL)

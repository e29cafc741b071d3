"""Fixtures and helpers shared by the store tests."""

from __future__ import annotations

import multiprocessing as mp
import queue
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest

from jobfleet.store import WHOLE_JOB, JobRecord, Store

CTX = mp.get_context("spawn")
DEADLINE = 120.0  # generous: only reached when something is truly stuck


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def collect(out: Any, procs: Sequence[BaseProcess], count: int) -> list[Any]:
    """Take ``count`` results from ``out``, failing fast if a child process died."""
    results: list[Any] = []
    deadline = time.monotonic() + DEADLINE
    while len(results) < count:
        try:
            results.append(out.get(timeout=0.05))
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise AssertionError(f"{dead[0].name} died, exit code {dead[0].exitcode}") from None
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for child results") from None
    return results


@pytest.fixture
def spawn() -> Iterator[Callable[..., BaseProcess]]:
    """Start child processes; any still alive at teardown (a failed test) are killed."""
    started: list[BaseProcess] = []

    def start(target: Callable[..., None], *args: Any) -> BaseProcess:
        proc = CTX.Process(target=target, args=args)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.is_alive():
            proc.kill()
        proc.join(DEADLINE)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobfleet.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as s:
        yield s


def add(store: Store, name: str = "job", n: int | None = 3, **kw: Any) -> JobRecord:
    ids = (WHOLE_JOB,) if n is None else range(n)
    kw.setdefault("backend", "local")
    kw.setdefault("description", {"cmd": ["echo", name]})
    return store.add_job(name, subjob_ids=ids, **kw)


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)

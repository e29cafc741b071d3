"""End to end through the installed ``jobfleet`` command: a runner killed mid-way loses nothing.

Each of 20 subjobs appends one line to its own marker file. Whatever process
polls the local backend is SIGKILLed while units run; a new ``jobfleet watch``
must adopt the running units, launch the rest, and finish with every subjob
completed and every marker file holding exactly one line.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from helpers import wait_until

from .conftest import jobfleet_process, run_jobfleet

SUBJOBS = 20


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir()
    path = tmp_path / "spec.toml"
    path.write_text(
        f"""name = "e2e"
cmd = ["bash", "-c", 'echo "$$" >> {markers}/$1; sleep 0.3', "unit"]
max_retries = 0

[split.arguments]
range = [0, {SUBJOBS}]

[backend]
name = "local"
max_processes = 4
"""
    )
    return path


def _markers(tmp_path: Path) -> dict[str, list[str]]:
    return {p.name: p.read_text().splitlines() for p in (tmp_path / "markers").iterdir()}


def _runner_pid(db: Path) -> int | None:
    """The pid in the owner of the local poll lease ("host:pid:tag"), if someone holds it."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT owner FROM leases WHERE scope = 'poll:local'").fetchone()
    return int(row[0].split(":")[1]) if row else None


def _check_all_ran_once(db: Path, tmp_path: Path) -> None:
    status = run_jobfleet("--db", str(db), "status", "e2e", "--json")
    doc = json.loads(status.out)
    assert doc["status"] == "completed", doc["counts"]
    assert doc["counts"] == {"completed": SUBJOBS}
    assert all(s["attempts"] == 1 for s in doc["subjobs"])
    markers = _markers(tmp_path)
    assert sorted(markers, key=int) == [str(i) for i in range(SUBJOBS)]  # none lost
    assert {name: len(lines) for name, lines in markers.items() if len(lines) != 1} == {}


def _kill_mid_way(proc_pid: int, tmp_path: Path) -> None:
    wait_until(lambda: len(_markers(tmp_path)) >= 6, what="some subjobs to have started")
    assert len(_markers(tmp_path)) < SUBJOBS, "too late to kill mid-way"
    os.kill(proc_pid, signal.SIGKILL)


def test_watch_killed_mid_way_then_watch_again(db, spec, tmp_path):
    submitted = run_jobfleet("submit", str(spec), "--no-runner")
    assert submitted.code == 0, submitted.err
    first = jobfleet_process("watch", "e2e", "--quiet")
    wait_until(lambda: _runner_pid(db) == first.pid, what="watch to become the runner")
    _kill_mid_way(first.pid, tmp_path)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    again = run_jobfleet("watch", "e2e", timeout=120)
    assert again.code == 0, again.err
    assert "e2e: completed" in again.err
    _check_all_ran_once(db, tmp_path)


def test_background_runner_killed_mid_way_then_watch(db, spec, tmp_path):
    submitted = run_jobfleet("submit", str(spec))
    assert submitted.code == 0, submitted.err
    assert "background runner" in submitted.err
    runner = wait_until(lambda: _runner_pid(db), what="the background runner to poll")
    _kill_mid_way(runner, tmp_path)
    again = run_jobfleet("watch", "e2e", "--quiet", timeout=120)
    assert again.code == 0, again.err
    _check_all_ran_once(db, tmp_path)

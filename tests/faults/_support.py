"""Shared by the process-kill, concurrency and Ctrl-C fault tests (tests/faults/test_*.py).

Jobs here write one marker line per run (``<marks>/<subjob>.mark``), so a subjob
that ran twice shows two lines whatever the store says.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cli.conftest import jobfleet_process, run_jobfleet
from jobfleet.fleet.unitfiles import PID_FILE
from jobfleet.store import Store

__all__ = [
    "alive",
    "group_alive",
    "jobfleet_process",
    "kill_group",
    "marker_lines",
    "pid_files",
    "row_counts",
    "run_jobfleet",
    "status_json",
    "store_rows",
]


def marker_lines(marks: Path) -> dict[int, int]:
    """Subjob id -> how many times it ran (lines in its marker file)."""
    return {int(p.stem): len(p.read_text().splitlines()) for p in marks.glob("*.mark")}


def status_json(job: str) -> dict[str, Any]:
    """``jobfleet status JOB --json``, parsed (through the real command)."""
    result = run_jobfleet("status", job, "--json")
    assert result.code == 0, result.err
    doc: dict[str, Any] = json.loads(result.out)
    return doc


def store_rows(db: Path, job: str) -> list[tuple[int, str, int | None, str | None, int]]:
    """``(subjob, status, exit code, reason, attempt)`` of every stored subjob of ``job``."""
    with Store(db) as store:
        record = store.get_job(job)
        return [
            (r.subjob_id, str(r.status), r.exit_code, r.reason, r.attempt)
            for r in store.subjobs(record.id)
        ]


def row_counts(db: Path) -> dict[str, int]:
    """Rows per table, read with plain sqlite3 (not through jobfleet)."""
    conn = sqlite3.connect(db)
    try:
        tables = ("jobs", "subjobs", "attempts", "leases")
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}
    finally:
        conn.close()


def pid_files(root: Path) -> dict[Path, int]:
    """Working directory -> pid recorded by the local driver's unit pid files under ``root``."""
    found = {}
    for path in root.rglob(PID_FILE):
        try:
            found[path.parent] = int(path.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            continue
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live, non-zombie process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is still in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def kill_group(pids: Iterable[int]) -> None:
    """SIGKILL what a test left behind (its own helpers), ignoring the already gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def wait_exit(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str, str]:
    """Wait for ``proc`` and return ``(code, stdout, stderr)``."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def now() -> float:
    return time.monotonic()

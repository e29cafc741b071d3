"""Shared by the process-kill, concurrency and Ctrl-C fault tests (tests/faults/test_*.py).

Jobs here write one marker line per run (``<marks>/<subjob>.mark``), so a subjob
that ran twice shows two lines whatever the store says.
"""

from __future__ import annotations

from pathlib import Path

from cli.conftest import jobfleet_process, run_jobfleet

__all__ = ["group_alive", "jobfleet_process", "marker_lines", "run_jobfleet"]


def marker_lines(marks: Path) -> dict[int, int]:
    """Subjob id -> how many times it ran (lines in its marker file)."""
    return {int(p.stem): len(p.read_text().splitlines()) for p in marks.glob("*.mark")}


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is still in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False

"""Scenario 2: preparing a big job (100,000 input files, one per subjob) without running it.

jobfleet: ``jobfleet submit spec.toml --no-runner`` in a fresh process (spec
loading and the glob of the inputs, splitting, every subjob's directory, wrapper
script and input list, the store's job, subjob and attempt rows), timed from
process start to exit. Floor: a fresh process with the least Python that lists
the inputs and writes the same files (same count, same content sizes) and the
same number of SQLite rows in one transaction. Peak memory (max RSS) of each
process is its own ``VmHWM``. The input files are created once per place, untimed;
both sides run on the disk and, where there is one, on a memory file system.

Usage: python benchmarks/bench_prepare.py [--quick]
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TARGET_HEADERS,
    in_subprocess,
    jobfleet_cli,
    memory_fs,
    ratio_text,
    table,
    target_row,
)

TARGET_RATIO = 1.5
TARGET_MB = 300.0
#: Rounds per place; each side runs first in every other one.
ROUNDS = 2
NAME = "bench"
NAME_MARK = "@SUBJOB_NAME@"

SPEC = """\
name = "{name}"
cmd = ["python3", "analyse.py"]
input_files = ["inputs/*.dat"]
working_dir = "{work}"
[split]
max_files_per_subjob = 1
[backend]
name = "local"
max_processes = 2
"""


def make_inputs(root: Path, n: int) -> Path:
    inputs = root / "inputs"
    inputs.mkdir()
    for i in range(n):
        (inputs / f"run{i:07d}.dat").write_bytes(b"x\n")
    return inputs


def wrapper_template() -> str:
    """jobfleet's wrapper for this spec, with the subjob name as a placeholder (untimed)."""
    from jobfleet.job import Job
    from jobfleet.workdir import render_wrapper

    job = Job(NAME_MARK)
    job.cmd = ["python3", "analyse.py"]
    return render_wrapper(job)


# -- the two sides, each run in its own interpreter ----------------------------------------------


def floor_side(inputs: str, work: str, db: str, template: str) -> dict[str, Any]:
    """The least Python writing the same files and rows; returns what it wrote."""
    names = sorted(os.listdir(inputs))
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT, description TEXT)")
    conn.execute(
        "CREATE TABLE subjobs (job_id INT, subjob_id INT, status TEXT, native_id TEXT,"
        " attempt INT, submitted_at REAL, PRIMARY KEY (job_id, subjob_id)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE attempts (job_id INT, subjob_id INT, attempt INT, status TEXT,"
        " PRIMARY KEY (job_id, subjob_id, attempt)) WITHOUT ROWID"
    )
    os.makedirs(work)
    paths = [f"{inputs}/{name}" for name in names]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for i, path in enumerate(paths):
        d = f"{work}/{i}"
        os.mkdir(d)
        # os.open/os.write: fewer system calls than open() (no buffering, no seek, no ioctl).
        fd = os.open(f"{d}/__BACKEND_INPUT_FILES__.json", flags, 0o666)
        os.write(fd, json.dumps([path]).encode())
        os.close(fd)
        fd = os.open(f"{d}/submit.sh", flags, 0o755)
        os.fchmod(fd, 0o755)
        os.write(fd, template.replace(NAME_MARK, f"{NAME}_{i}").encode())
        os.close(fd)
    now = time.time()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO jobs VALUES (1, ?, ?)", (NAME, json.dumps(paths)))
    conn.executemany(
        "INSERT INTO subjobs VALUES (1, ?, 'submitted', 'local', 1, ?)",
        ((i, now) for i in range(len(paths))),
    )
    conn.executemany(
        "INSERT INTO attempts VALUES (1, ?, 1, 'submitted')", ((i,) for i in range(len(paths)))
    )
    conn.execute("COMMIT")
    conn.close()
    return {"subjobs": len(paths)}


def _check(work: Path, db: Path, n: int) -> None:
    """Both sides really wrote n directories with script and input list, and the rows."""
    dirs = [d for d in os.scandir(work) if d.is_dir()]
    if len(dirs) != n or not all((Path(d.path) / "submit.sh").is_file() for d in dirs[:50]):
        raise RuntimeError(f"{work}: {len(dirs)} subjob directories, expected {n}")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM subjobs WHERE status = 'submitted'").fetchone()
    if rows[0] != n:
        raise RuntimeError(f"{db}: {rows[0]} submitted subjob rows, expected {n}")


def _remove(tree: Path) -> None:
    # Only at the end: deleting 100,000 directories keeps the disk busy (discards,
    # journal) long after rm returns, which would slow whichever side runs next.
    # rm is several times faster than shutil.rmtree on 100,000 directories.
    subprocess.run(["rm", "-rf", str(tree)], check=True)


Runs = dict[str, list[tuple[float, float]]]


def _measure(n: int, template: str, parent: str | None, rounds: int) -> Runs:
    """Seconds and peak MB of each side per round, in fresh directories under ``parent``.

    The order alternates (floor first, then jobfleet first), so neither side always
    runs on the file system the other has just filled.
    """
    root = Path(tempfile.mkdtemp(prefix="jf-bench-prepare-", dir=parent))
    runs: Runs = {"jobfleet": [], "floor": []}
    try:
        inputs = make_inputs(root, n)
        for i in range(rounds):
            for side in ("floor", "jobfleet") if i % 2 == 0 else ("jobfleet", "floor"):
                work, db = root / f"{side}{i}", root / f"{side}{i}.db"
                os.sync()  # start each side with no one else's dirty files still being written
                if side == "floor":
                    args = (str(inputs), str(work), str(db), template)
                    _, seconds, peak = in_subprocess("bench_prepare", "floor_side", *args)
                else:
                    spec = root / f"bench{i}.toml"
                    spec.write_text(SPEC.format(name=NAME, work=work))
                    cli = ["--db", str(db), "submit", str(spec), "--no-runner"]
                    seconds, peak = jobfleet_cli(cli)
                _check(work, db, n)
                runs[side].append((seconds, peak))
    finally:
        _remove(root)
    return runs


def run(quick: bool = False, n: int | None = None) -> str:
    n = n or (500 if quick else 100_000)
    rounds = 1 if quick else ROUNDS
    template = wrapper_template()
    # The memory file system first: removing 200,000 directories from the disk keeps
    # the kernel busy (write-back, discards) for a while after rm returns.
    memory = memory_fs()
    places: list[tuple[str, str | None]] = [] if memory is None else [(f"tmpfs ({memory})", memory)]
    places.append(("disk", None))
    rows = []
    listed = []
    for label, parent in places:
        runs = _measure(n, template, parent, rounds)
        ours = min(seconds for seconds, _ in runs["jobfleet"])
        base = min(seconds for seconds, _ in runs["floor"])
        ours_mb = max(peak for _, peak in runs["jobfleet"])
        base_mb = max(peak for _, peak in runs["floor"])
        rows.append(
            target_row(
                f"{n:,} subjobs prepared, wall time, {label}",
                f"{ours:.2f} s",
                f"{base:.2f} s",
                ratio_text(ours, base),
                f"<= {TARGET_RATIO}x",
                ours / base <= TARGET_RATIO,
            )
        )
        rows.append(
            target_row(
                f"peak memory (max RSS), {label}",
                f"{ours_mb:.0f} MB",
                f"{base_mb:.0f} MB",
                ratio_text(ours_mb, base_mb),
                f"< {TARGET_MB:.0f} MB",
                ours_mb < TARGET_MB,
            )
        )
        listed.append(
            f"{label}: jobfleet "
            + " / ".join(f"{seconds:.2f}" for seconds, _ in runs["jobfleet"])
            + " s, floor "
            + " / ".join(f"{seconds:.2f}" for seconds, _ in runs["floor"])
            + " s"
        )
    return "\n".join(
        [
            "## 2. Preparing a big job",
            "",
            f"{n:,} input files, `max_files_per_subjob = 1`: {n:,} subjobs. jobfleet: "
            "`jobfleet submit spec.toml --no-runner` in a fresh process (spec, glob, split, "
            "every subjob's directory, `submit.sh` and input list, the store's job, subjob and "
            "attempt rows), from process start to exit. Floor: a fresh process listing the inputs "
            "and writing the same files (same contents' sizes) and the same number of SQLite rows "
            "in one transaction. Peak memory is each process's peak resident set (`VmHWM`). "
            f"The best of {rounds} rounds per side (the order alternates between rounds), on "
            "a memory file system and on the disk. On this disk, "
            "creating a file can cost 0.15 to 1 ms depending on how many files were deleted "
            "shortly before, so the disk ratio swings from run to run; the memory file system "
            "shows each side's own work.",
            "",
            table(TARGET_HEADERS, rows),
            "",
            "Every run, in round order: " + "; ".join(listed) + ".",
        ]
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

"""Scenario 2: preparing a big job (100,000 input files, one per subjob) without running it.

jobfleet: ``jobfleet submit spec.toml --no-runner`` in a fresh process (spec
loading and the glob of the inputs, splitting, every subjob's directory, wrapper
script and input list, the store's job, subjob and attempt rows), timed from
process start to exit. Floor: a fresh process with the least Python that lists
the inputs and writes the same files (same count, same content sizes) and the
same number of SQLite rows in one transaction. Peak memory (max RSS) of each
process comes from ``os.wait4``. The input files are created once, untimed.

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
    median,
    ratio_text,
    table,
    target_row,
)

TARGET_RATIO = 1.5
TARGET_MB = 300.0
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


def run(quick: bool = False, n: int | None = None) -> str:
    n = n or (500 if quick else 100_000)
    repeats = 1  # 100,000 directories per side: one run each fits the time budget
    template = wrapper_template()
    ours_t: list[float] = []
    base_t: list[float] = []
    ours_mb: list[float] = []
    base_mb: list[float] = []
    root = Path(tempfile.mkdtemp(prefix="jf-bench-prepare-"))
    try:
        inputs = make_inputs(root, n)
        for attempt in range(repeats):
            base_work, base_db = root / f"floor{attempt}", root / f"floor{attempt}.db"
            os.sync()  # start each side with no one else's dirty files still being written
            _, seconds, peak = in_subprocess(
                "bench_prepare", "floor_side", str(inputs), str(base_work), str(base_db), template
            )
            _check(base_work, base_db, n)
            base_t.append(seconds)
            base_mb.append(peak)
            work, db = root / f"jf{attempt}", root / f"jf{attempt}.db"
            spec = root / "bench.toml"
            spec.write_text(SPEC.format(name=NAME, work=work))
            os.sync()
            seconds, peak = jobfleet_cli(["--db", str(db), "submit", str(spec), "--no-runner"])
            _check(work, db, n)
            ours_t.append(seconds)
            ours_mb.append(peak)
    finally:
        _remove(root)
    ours, base = median(ours_t), median(base_t)
    peak_ours = max(ours_mb)
    rows = [
        target_row(
            f"{n:,} subjobs prepared, wall time",
            f"{ours:.2f} s",
            f"{base:.2f} s",
            ratio_text(ours, base),
            f"<= {TARGET_RATIO}x",
            ours / base <= TARGET_RATIO,
        ),
        target_row(
            "peak memory (max RSS)",
            f"{peak_ours:.0f} MB",
            f"{max(base_mb):.0f} MB",
            ratio_text(peak_ours, max(base_mb)),
            f"< {TARGET_MB:.0f} MB",
            peak_ours < TARGET_MB,
        ),
    ]
    runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(ours_t, base_t, strict=True))
    return "\n".join(
        [
            "## 2. Preparing a big job",
            "",
            f"{n:,} input files, `max_files_per_subjob = 1`: {n:,} subjobs. jobfleet: "
            "`jobfleet submit spec.toml --no-runner` in a fresh process (spec, glob, split, "
            "every subjob's directory, `submit.sh` and input list, the store's job, subjob and "
            "attempt rows), from process start to exit. Floor: a fresh process listing the inputs "
            "and writing the same files (same contents' sizes) and the same number of SQLite rows "
            "in one transaction. Peak memory is each process's max RSS (`os.wait4`). "
            "One run each.",
            "",
            table(TARGET_HEADERS, rows),
            "",
            f"Every run (jobfleet/floor seconds): {runs}; peak MB jobfleet "
            + "/".join(f"{m:.0f}" for m in ours_mb)
            + ", floor "
            + "/".join(f"{m:.0f}" for m in base_mb)
            + ".",
        ]
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

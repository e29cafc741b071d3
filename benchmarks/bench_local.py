"""Scenario 1: local dispatch of trivial subjobs, two at a time, against the minimal floor.

For N subjobs running ``true`` with two processes, in one run:

* floor: a minimal Python loop doing only the unavoidable work per subjob (one
  directory, one wrapper script, one ``bash`` with stdout/stderr/exit code in
  files there), two threads;
* CLI: ``jobfleet submit spec.toml --watch`` (a fresh process, as a user runs it:
  store, working directories, the runner launching units, statuses in the store);
* API: ``Job`` + ``ArgumentsSplitter`` + ``Local(max_processes=2)`` (the caf-style
  backend), from ``submit`` until ``join`` returns.

Each side runs REPEATS times, interleaved, and the medians are compared; every
size runs on a memory file system (where there is one) and on the disk.
Usage: python benchmarks/bench_local.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TARGET_HEADERS,
    jobfleet_cli,
    median,
    memory_fs,
    python_process,
    ratio_text,
    table,
    target_row,
    timed,
)

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, Local, range_arguments

TARGET = 1.2
REPEATS = 3
CLI_TIMEOUT = 900.0
#: Seconds the rounds of one size may take together (one round always runs).
BUDGET = 150.0
FLOOR_SCRIPT = "#!/bin/bash\ntrue\necho $? > exit_code\n"
#: What `jobfleet submit --watch` cannot start without: the command line (Click), the
#: spec models (pydantic), the wrapper template (Jinja2) and the progress display (Rich).
REQUIRED_LIBRARIES = "import click, jinja2, rich.progress; from pydantic import BaseModel"

SPEC = """\
name = "bench"
cmd = ["true"]
working_dir = "{work}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "local"
max_processes = 2
"""


def floor(n: int, root: Path) -> None:
    def one(i: int) -> int:
        workdir = root / str(i)
        workdir.mkdir(parents=True)
        (workdir / "run.sh").write_text(FLOOR_SCRIPT)
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            return subprocess.call(["/bin/bash", "run.sh"], cwd=workdir, stdout=out, stderr=err)

    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = sum(1 for code in pool.map(one, range(n)) if code)
    if failed:
        raise RuntimeError(f"floor: {failed} of {n} subjobs failed")


def api(n: int, root: Path) -> None:
    job = Job("bench")
    job.working_dir = root
    job.cmd = ["true"]
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, n), max_subjobs=n
    )
    backend = Local(max_processes=2)
    backend.submit(job)
    backend.join()
    if job.status != "completed":
        raise RuntimeError(f"Local backend: {job.status_counts()}")


def cli(n: int, root: Path) -> None:
    spec = root / "bench.toml"
    spec.write_text(SPEC.format(work=root / "work", n=n))
    db = str(root / "store.db")
    jobfleet_cli(["--db", db, "submit", str(spec), "--watch"], timeout=CLI_TIMEOUT)


def _startup() -> float:
    """Seconds of a fresh ``jobfleet submit --dry-run`` of a one-subjob spec: interpreter,
    every import ``submit`` needs, the spec loaded and its script rendered; nothing stored."""
    with tempfile.TemporaryDirectory(prefix="jf-bench-startup-") as tmp:
        root = Path(tmp)
        spec = root / "startup.toml"
        spec.write_text(SPEC.format(work=root / "work", n=1))
        db = str(root / "store.db")
        return jobfleet_cli(["--db", db, "submit", str(spec), "--dry-run"])[0]


Side = Callable[[int, Path], None]


def measure(
    n: int, sides: dict[str, Side], repeats: int, parent: str | None = None
) -> dict[str, list[float]]:
    """Wall seconds of each side, ``repeats`` times, interleaved so noise hits all alike.

    Fewer rounds when one round takes so long (a loaded machine) that all of them
    would overrun :data:`BUDGET` seconds.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="jf-bench-local-", dir=parent))
    try:
        for done in range(1, repeats + 1):
            for name, side in sides.items():
                tree = root / f"{name}-{done}"
                tree.mkdir()
                os.sync()  # untimed: no side starts with another's writes still pending
                times[name].append(timed(lambda: side(n, tree)))  # noqa: B023
            spent = time.perf_counter() - start
            if done < repeats and spent / done * (done + 1) > BUDGET:
                break
    finally:
        # Only at the end: on ext4 without a journal (these machines), every new file
        # skips the inodes freed in the last minute (up to six when not yet written
        # back), so deleting one side's tree made the next side pay for it.
        subprocess.run(["rm", "-rf", str(root)], check=True)
    return times


def run(quick: bool = False) -> str:
    sizes = [40] if quick else [1000, 10_000]
    repeats = 1 if quick else REPEATS
    sides: dict[str, Side] = {"floor": floor, "cli": cli, "api": api}
    rows, detail = [], []
    # The CLI pays a fixed start-up (interpreter, imports, spec) that no floor has.
    startup = median([_startup() for _ in range(repeats)])
    # The least any Python CLI built on those libraries can take to start here.
    libraries = median([python_process(REQUIRED_LIBRARIES, [])[0] for _ in range(repeats)])
    # In memory first: the disk runs end by deleting their trees, which keeps the
    # kernel busy for a while after rm returns.
    memory = memory_fs()
    places = ([] if memory is None else [(f", tmpfs ({memory})", memory)]) + [("", None)]
    for where, parent in places:
        for n in sizes:
            times = measure(n, sides, repeats, parent)
            base = median(times["floor"])
            cli_rest = median(times["cli"]) - startup
            # The target leaves this much for start-up, given the work itself takes as
            # long as it does in-process (the API side).
            budget = TARGET * base - median(times["api"])
            detail.append(
                f"- N = {n:,}{where}: CLI minus its start-up: {cli_rest:.2f} s, "
                f"{ratio_text(cli_rest, base)} the floor; the {TARGET}x target leaves "
                f"{budget:.2f} s for start-up ({TARGET} x floor - API)"
            )
            for name, label in (
                ("cli", "`jobfleet submit --watch`"),
                ("api", "`Local` backend (API)"),
            ):
                ours = median(times[name])
                rows.append(
                    target_row(
                        f"{n:,} subjobs, {label}{where}",
                        f"{ours:.2f} s",
                        f"{base:.2f} s",
                        ratio_text(ours, base),
                        f"<= {TARGET}x",
                        ours / base <= TARGET,
                    )
                )
            per = ", ".join(
                f"{name}: " + " / ".join(f"{t:.2f}" for t in ts) for name, ts in times.items()
            )
            detail.append(f"- N = {n:,}{where}: {per} s")
    return "\n".join(
        [
            "## 1. Local dispatch",
            "",
            "Trivial subjobs (`true`), `max_processes = 2`, wall time from submission until all "
            "ended. Baseline: the minimal floor (a directory, a wrapper script and one `bash` per "
            "subjob, stdout/stderr/exit code in files, two threads). jobfleet: the command a user "
            "runs (`jobfleet submit spec.toml --watch`, a fresh process, including interpreter "
            "start-up and the store), and the caf-style `Local` backend from Python. "
            f"Medians of up to {repeats} interleaved runs (fewer when a round takes so long that "
            f"all would exceed {BUDGET:.0f} s; every run is listed below). Each size runs on "
            "a memory file system (tmpfs) and on the disk: on the disk, creating a file costs "
            "0.15 to 1 ms depending on how many files were deleted shortly before, so the "
            "disk's ratios swing from run to run; tmpfs shows each side's own work.",
            "",
            table(TARGET_HEADERS, rows),
            "",
            f"Start-up of the CLI (`jobfleet submit --dry-run` of a one-subjob spec in a fresh "
            f"interpreter, median of {repeats}): {startup:.2f} s; a fresh interpreter "
            "importing only the libraries the command needs "
            f"({REQUIRED_LIBRARIES.replace('; ', ', ')}): {libraries:.2f} s. Without the start-up:",
            "",
            *[d for d in detail if "start-up" in d],
            "",
            "Every run (seconds, in order):",
            "",
            *[d for d in detail if "start-up" not in d],
        ]
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

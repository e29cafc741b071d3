"""Local dispatch throughput: jobfleet against the least work that can do the same.

For N trivial subjobs (``true``), two at a time, this measures in one run:

* the floor: a minimal Python loop doing only the unavoidable work (one
  directory, one wrapper script and one ``bash`` process per subjob, its
  stdout, stderr and exit code written to files there, two at a time);
* jobfleet: ``Job`` + ``ArgumentsSplitter`` + ``Local(max_processes=2)``,
  from ``submit`` until ``join`` returns and all statuses are final.

It also times the status of a 100,000-subjob job. Absolute times on a shared
machine are noise; the ratio is the figure to read (target: <= 1.2 at N=1000;
status of 100,000 subjobs < 50 ms).

Usage: python benchmarks/local_throughput.py [N ...]   (default: 1000)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, Local, range_arguments

FLOOR_SCRIPT = "#!/bin/bash\ntrue\necho $? > exit_code\n"


def floor(n: int, root: Path) -> float:
    start = time.perf_counter()

    def run(i: int) -> int:
        workdir = root / str(i)
        workdir.mkdir(parents=True)
        (workdir / "run.sh").write_text(FLOOR_SCRIPT)
        # Output has to land somewhere: files in the working directory, as for jobfleet.
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            return subprocess.call(["/bin/bash", "run.sh"], cwd=workdir, stdout=out, stderr=err)

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert sum(pool.map(run, range(n))) == 0
    return time.perf_counter() - start


def jobfleet_run(n: int, root: Path) -> float:
    start = time.perf_counter()
    job = Job("bench")
    job.working_dir = root
    job.cmd = ["true"]
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    backend = Local(max_processes=2)
    backend.submit(job)
    backend.join()
    elapsed = time.perf_counter() - start
    assert job.status == "completed", job.status_counts()
    return elapsed


def status_of_big_job(n: int = 100_000) -> float:
    job = Job("big")
    for i in range(n):
        job.create_subjob(i)
    for sub in job.subjobs.values():
        sub.set_status("completed", exit_code=0)
    job.subjobs[n // 2].set_status("running", force=True)
    start = time.perf_counter()
    status = job.status
    elapsed = time.perf_counter() - start
    assert status == "running"
    return elapsed


def main(sizes: list[int]) -> None:
    print("local dispatch, max_processes=2 (wall seconds; best of 2)")
    print(f"{'N':>7} {'floor':>8} {'jobfleet':>9} {'ratio':>6}")
    for n in sizes:
        floors, ours = [], []
        for _ in range(2):  # interleave, so machine noise hits both alike
            with tempfile.TemporaryDirectory() as tmp:
                floors.append(floor(n, Path(tmp)))
            with tempfile.TemporaryDirectory() as tmp:
                ours.append(jobfleet_run(n, Path(tmp)))
        best_floor, best_ours = min(floors), min(ours)
        print(f"{n:>7} {best_floor:>8.2f} {best_ours:>9.2f} {best_ours / best_floor:>6.2f}")
    ms = status_of_big_job() * 1000
    print(f"status of a 100,000-subjob job: {ms:.3f} ms (target < 50 ms)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000])

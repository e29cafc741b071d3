"""Slurm submission: jobfleet's arrays against one ``sbatch`` per subjob, on the real cluster.

In one run, for N subjobs (default 1000), it measures:

* jobfleet: ``Slurm().submit(job)``: wall time, ``sbatch`` calls, and the
  scheduler calls of one poll while all N tasks are queued;
* the baseline: one ``sbatch`` per subjob (how caf.backends' batch backends
  submit), and a poll that asks ``squeue`` about each job on its own.

Jobs are submitted held (``--hold``) and cancelled at the end, so the benchmark
measures submission and polling, not the single node's throughput.
Targets: at most ceil(N / MaxArraySize) ``sbatch`` calls; at most 2 scheduler
calls per poll whatever N.

Usage: python benchmarks/slurm_submit.py [N ...]   (needs a Slurm cluster: ci/slurm/start.sh)
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, Slurm, range_arguments
from jobfleet.commands import command_calls, reset_command_calls


def jobfleet_submit(n: int, root: Path) -> dict[str, float]:
    job = Job("bench-jf")
    job.working_dir = root / "jf"
    job.cmd = ["true"]
    job.backend_args = {"extra_directives": ["--hold"]}
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, n), max_subjobs=n
    )
    backend = Slurm(backend_args={"min_poll_interval": 0})
    backend.max_array_size()  # read the cluster's config before the clock starts
    reset_command_calls()
    start = time.perf_counter()
    backend.submit(job)
    seconds = time.perf_counter() - start
    sbatch_calls = command_calls().get("sbatch", 0)
    reset_command_calls()
    backend.poll(force=True)
    poll_calls = sum(command_calls().values())
    queued = sum(1 for s in job.subjobs.values() if s.status == "submitted")
    backend.cancel(job)
    return {"seconds": seconds, "sbatch": sbatch_calls, "poll_calls": poll_calls, "queued": queued,
            "array_size": backend.max_array_size()}  # fmt: skip


def baseline_submit(n: int, root: Path) -> dict[str, float]:
    ids = []
    start = time.perf_counter()
    for i in range(n):
        workdir = root / "base" / str(i)
        workdir.mkdir(parents=True)
        script = workdir / "submit.sh"
        script.write_text("#!/bin/bash\n#SBATCH --hold\ntrue\necho $? > exit_code\n")
        argv = ["sbatch", "--parsable", f"--chdir={workdir}", f"--output={workdir}/stdout"]
        out = subprocess.run([*argv, str(script)], capture_output=True, text=True, check=True)
        ids.append(out.stdout.strip().split(";")[0])
    seconds = time.perf_counter() - start
    poll_start = time.perf_counter()
    for job_id in ids:  # a per-job status check
        subprocess.run(["squeue", "--noheader", "-j", job_id], capture_output=True, check=False)
    poll_seconds = time.perf_counter() - poll_start
    for first in range(0, len(ids), 500):
        subprocess.run(["scancel", *ids[first : first + 500]], check=False)
    return {"seconds": seconds, "sbatch": n, "poll_calls": n, "poll_seconds": poll_seconds}


def main(sizes: list[int]) -> None:
    print("Slurm submission (held jobs, cancelled afterwards)")
    for n in sizes:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            ours = jobfleet_submit(n, Path(tmp))
            base = baseline_submit(n, Path(tmp))
        bound = math.ceil(n / ours["array_size"])
        print(f"\nN = {n} (MaxArraySize {ours['array_size']:.0f}, bound on sbatch calls: {bound})")
        print(f"{'':28} {'jobfleet':>10} {'baseline':>10} {'ratio':>7}")
        print(f"{'submit wall time (s)':28} {ours['seconds']:>10.3f} {base['seconds']:>10.3f} "
              f"{base['seconds'] / ours['seconds']:>6.1f}x")  # fmt: skip
        print(f"{'sbatch calls':28} {ours['sbatch']:>10.0f} {base['sbatch']:>10.0f}")
        calls = f"{ours['poll_calls']:>10.0f} {base['poll_calls']:>10.0f}"
        print(f"{'scheduler calls per poll':28} {calls}")
        print(f"{'tasks queued at the poll':28} {ours['queued']:>10.0f}")
        print(f"baseline poll took {base['poll_seconds']:.2f} s")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000])

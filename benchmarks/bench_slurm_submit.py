"""Scenario 3: submitting 1,000 and 5,000 subjobs to the real Slurm.

Three ways of sending the same N trivial tasks, each counted by an ``sbatch``
wrapper on ``PATH`` (a script that logs the call, then runs the real one):

* jobfleet, as a user runs it: ``jobfleet submit spec.toml --no-runner`` in a
  fresh process (Python start-up, spec check, the store, N working directories
  with their wrapper scripts, array scripts, ``sbatch``, native ids recorded);
* baseline: a loop of one ``sbatch`` per subjob (a directory and a small script
  each, like caf.backends' batch backends submit), called directly;
* submitit (if it installs): ``SlurmExecutor.map_array`` of a trivial function.
  submitit sends one array of all N tasks, which this cluster refuses beyond
  ``MaxArraySize``; the refusal is recorded, then it is measured the way a user
  must use it here, one ``map_array`` per ``MaxArraySize - 1`` tasks.

Everything is submitted held (``--hold``) under a unique job name and cancelled
right after each measurement. Usage: python benchmarks/bench_slurm_submit.py [--quick]
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TARGET_HEADERS, ratio_text, table, target_row
from _slurm import (
    bench_name,
    call_log,
    cancel_named,
    config,
    logged_calls,
    queued_tasks,
    slurm_missing,
)

HEADROOM = 1_000  # job records left free for the other users of the cluster
SPEC = """\
name = "{name}"
cmd = ["true"]
working_dir = "{work}"
[split]
arguments = {{ range = [0, {n}] }}
[resources]
job_name = "{name}"
extra_directives = ["--hold"]
[backend]
name = "slurm"
"""
BASE_SCRIPT = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --job-name={name}\ntrue\necho $? > exit_code\n"


def _wait_for_room(n: int, limit: int, timeout: float = 120.0) -> bool:
    """Whether the cluster can take ``n`` more job records (waits for earlier ones to go)."""
    deadline = time.monotonic() + timeout
    while queued_tasks() + n + HEADROOM > limit:
        if time.monotonic() > deadline:
            return False
        time.sleep(2)
    return True


def jobfleet_cli(n: int, root: Path) -> dict[str, Any]:
    name = bench_name("submit")
    root.mkdir(parents=True, exist_ok=True)
    spec = root / f"{name}.toml"
    spec.write_text(SPEC.format(name=name, work=root / name, n=n))
    try:
        with call_log(root / f"{name}-log", ["sbatch"]) as log:
            start = time.perf_counter()
            done = subprocess.run(
                ["jobfleet", "--db", str(root / f"{name}.db"), "submit", str(spec), "--no-runner"],
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"jobfleet submit failed: {done.stderr[-1000:]}")
        queued = _count_named(name)
    finally:
        cancel_named(name)
    return {"seconds": seconds, "sbatch": logged_calls(log, "sbatch"), "queued": queued}


def _count_named(name: str) -> int:
    out = subprocess.run(
        ["squeue", "--noheader", "--array", f"--name={name}", "--format=%i"],
        capture_output=True,
        text=True,
        check=False,
    )
    return len(out.stdout.splitlines())


def baseline(n: int, root: Path) -> dict[str, Any]:
    name = bench_name("submit-base")
    try:
        start = time.perf_counter()
        for i in range(n):
            workdir = root / name / str(i)
            workdir.mkdir(parents=True)
            script = workdir / "submit.sh"
            script.write_text(BASE_SCRIPT.format(name=name))
            argv = ["sbatch", "--parsable", f"--chdir={workdir}", f"--output={workdir}/stdout"]
            subprocess.run([*argv, str(script)], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        queued = _count_named(name)
    finally:
        cancel_named(name)
    return {"seconds": seconds, "sbatch": n, "queued": queued}


def _trivial(x: int) -> int:
    return x


def submitit_side(n: int, root: Path, chunk: int) -> dict[str, Any]:
    try:
        import submitit
    except ImportError:
        return {"missing": "submitit is not installed (`pip install submitit`)"}
    name = bench_name("submit-submitit")
    refused = ""
    try:
        with call_log(root / f"{name}-log", ["sbatch"]) as log:
            executor = submitit.SlurmExecutor(folder=root / name)
            executor.update_parameters(job_name=name, time=10, additional_parameters={"hold": True})
            if n > chunk:  # first as documented: one array of all n tasks
                try:
                    executor.map_array(_trivial, range(n))
                except Exception as err:  # whatever submitit raises: record it
                    refused = str(err).strip().splitlines()[-1][:160]
                cancel_named(name)
            start = time.perf_counter()
            for first in range(0, n, chunk):
                executor.map_array(_trivial, range(first, min(n, first + chunk)))
            seconds = time.perf_counter() - start
            refused_calls = 1 if refused else 0
            calls = logged_calls(log, "sbatch") - refused_calls
        queued = _count_named(name)
    finally:
        cancel_named(name)
    return {"seconds": seconds, "sbatch": calls, "queued": queued, "refused": refused}


def run(quick: bool = False) -> str:
    title = "## 3. Slurm submission"
    missing = slurm_missing()
    if missing:
        return f"{title}\n\nNot measured: {missing}."
    conf = config()
    limit = int(conf.get("MaxJobCount", "10000"))
    array_size = int(conf.get("MaxArraySize", "1001"))
    sizes = [200] if quick else [1000, 5000]
    rows, detail, notes = [], [], []
    with tempfile.TemporaryDirectory(prefix="jfbench-submit-") as tmp:
        root = Path(tmp)
        for n in sizes:
            if not _wait_for_room(n, limit):
                notes.append(f"N = {n:,} skipped: the cluster had no room for {n:,} more jobs.")
                continue
            ours = jobfleet_cli(n, root / f"jf{n}")
            # Cancelled arrays leave the controller at once; N cancelled single jobs stay
            # MinJobAge seconds, so the one-sbatch-per-subjob loop runs last.
            _wait_for_room(n, limit, timeout=30)
            try:
                other = submitit_side(n, root / f"si{n}", array_size - 1)
            except Exception as err:  # e.g. the cluster full of other users' jobs
                other = {"missing": f"failed: {str(err).strip().splitlines()[-1][:160]}"}
            _wait_for_room(n, limit, timeout=30)
            base = baseline(n, root / f"base{n}")
            bound = math.ceil(n / (array_size - 1))
            rows.append(target_row(
                f"submit wall time, {n:,} subjobs", f"{ours['seconds']:.2f} s",
                f"{base['seconds']:.2f} s", ratio_text(ours["seconds"], base["seconds"]),
                "faster than one sbatch per subjob", ours["seconds"] < base["seconds"],
            ))  # fmt: skip
            rows.append(target_row(
                f"sbatch calls, {n:,} subjobs", str(ours["sbatch"]), str(base["sbatch"]),
                ratio_text(ours["sbatch"], base["sbatch"]), f"<= ceil(N / {array_size - 1}) = "
                f"{bound}", ours["sbatch"] <= bound,
            ))  # fmt: skip
            if "missing" in other:
                si = [other["missing"], "", ""]
            else:
                si = [f"{other['seconds']:.2f} s", str(other["sbatch"]), f"{other['queued']:,}"]
                if other["refused"]:
                    notes.append(
                        f"submitit, N = {n:,}: one `map_array` of all tasks was refused "
                        f"(`{other['refused']}`); measured as {bound} calls of "
                        f"{array_size - 1} tasks."
                    )
                rows.append([
                    f"vs submitit, {n:,} subjobs (wall)", f"{ours['seconds']:.2f} s",
                    si[0], ratio_text(ours["seconds"], other["seconds"]), "", "",
                ])  # fmt: skip
            detail.append([
                f"{n:,}", f"{ours['seconds']:.2f} s", str(ours["sbatch"]), f"{ours['queued']:,}",
                f"{base['seconds']:.2f} s", str(base["sbatch"]), f"{base['queued']:,}", *si,
            ])  # fmt: skip
    start = time.perf_counter()
    subprocess.run(["jobfleet", "--help"], capture_output=True, check=False)
    notes.append(
        f"Of jobfleet's time, starting the `jobfleet` command (`jobfleet --help`) takes "
        f"{time.perf_counter() - start:.2f} s."
    )
    notes += [
        f"MaxArraySize={array_size}: at most {array_size - 1} tasks per array (indices from 0).",
        "jobfleet's time is a whole `jobfleet submit` process: Python start-up and imports, "
        "the spec check, the store, N working directories with their wrapper and input files, "
        "the array scripts and the `sbatch` calls; the baseline writes one small script per "
        "subjob; submitit pickles one call per task.",
        "All jobs held (`--hold`), counted in `squeue` (queued column), then cancelled. "
        f"The baseline's cancelled single jobs stay in the controller for MinJobAge "
        f"({conf.get('MinJobAge', '?')}), taking job records (MaxJobCount={limit}) from "
        "everyone for that long; jobfleet's and submitit's arrays leave at once.",
    ]
    if quick:
        notes.append("Quick run: 200 subjobs only.")
    headers = ["N", "jobfleet", "sbatch", "queued", "one sbatch each", "sbatch", "queued",
               "submitit", "sbatch", "queued"]  # fmt: skip
    return "\n\n".join([
        title,
        "Wall time and `sbatch` calls to submit N held trivial subjobs: `jobfleet submit` "
        "against one `sbatch` per subjob and against submitit's `map_array`.",
        table(TARGET_HEADERS, rows),
        table(headers, detail),
        "\n".join(f"- {n}" for n in notes),
    ])  # fmt: skip


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

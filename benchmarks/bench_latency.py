"""Scenario 6: completion latency, from the last subjob's exit to ``jobfleet watch`` returning.

Every subjob's command ends with ``date +%s.%N > marker`` (the last thing before
it exits); the latency of a run is the time ``jobfleet submit spec.toml --watch``
(a fresh process, as a user runs it) exits minus the newest marker. Several runs,
medians, on:

* local (2 processes): against the floor, a Python parent running the same
  commands two at a time and ``wait``-ing on them directly;
* Slurm: against a minimal shell-style poller of the same job (one ``sbatch``
  array of the same commands, then ``squeue -j ID -h`` every poll interval until
  it prints nothing, then reading the exit files), with the same poll interval.

Usage: python benchmarks/bench_latency.py [--quick]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TARGET_HEADERS, ratio_text, table, target_row
from _slurm import bench_name, cancel_named, slurm_missing

from jobfleet.cli.watch import _FALLBACK_INTERVAL
from jobfleet.fleet import get_driver

SUBJOBS = 4
WORK = "sleep 0.5; date +%s.%N > {markers}/m$0"  # $0: the subjob's generated argument
SPEC = """\
name = "{name}"
cmd = ["bash", "-c", "{work}"]
working_dir = "{root}/{name}"
[split]
arguments = {{ range = [0, {n}] }}
[resources]
job_name = "{name}"
[backend]
name = "{backend}"
{extra}
"""
ARRAY_SCRIPT = """#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --output={root}/%A_%a.log
bash -c '{work}' $SLURM_ARRAY_TASK_ID
echo $? > {root}/exit_$SLURM_ARRAY_TASK_ID
"""


def _last_marker(markers: Path) -> float:
    stamps = [float(p.read_text()) for p in markers.iterdir()]
    if len(stamps) != SUBJOBS:
        raise RuntimeError(f"{len(stamps)} of {SUBJOBS} subjobs left a marker in {markers}")
    return max(stamps)


def jobfleet_run(root: Path, backend: str) -> float:
    """Latency of one ``jobfleet submit --watch`` of the marker job on ``backend``."""
    name = bench_name(f"latency-{backend}")
    markers = root / f"{name}-markers"
    markers.mkdir(parents=True)
    extra = "max_processes = 2" if backend == "local" else ""
    spec = root / f"{name}.toml"
    work = WORK.format(markers=markers)
    spec.write_text(
        SPEC.format(name=name, work=work, root=root, n=SUBJOBS, backend=backend, extra=extra)
    )
    try:
        done = subprocess.run(
            ["jobfleet", "--db", str(root / f"{name}.db"), "submit", str(spec), "--watch"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        returned = time.time()
    finally:
        if backend == "slurm":
            cancel_named(name)
    if done.returncode != 0:
        raise RuntimeError(f"jobfleet submit --watch failed: {done.stderr[-1000:]}")
    return returned - _last_marker(markers)


def local_floor(root: Path) -> float:
    """The same commands, two at a time, waited on directly."""
    markers = root / f"floor-{time.monotonic_ns()}"
    markers.mkdir(parents=True)
    work = WORK.format(markers=markers)

    def one(i: int) -> int:
        return subprocess.call(["bash", "-c", work, str(i)])

    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(one, range(SUBJOBS)))
    returned = time.time()
    if any(codes):
        raise RuntimeError(f"floor: exit codes {codes}")
    return returned - _last_marker(markers)


def slurm_poller(root: Path, interval: float) -> float:
    """One ``sbatch`` array of the same commands, then ``squeue -j ID -h`` until it is empty."""
    name = bench_name("latency-poller")
    markers = root / f"{name}-markers"
    markers.mkdir(parents=True)
    script = root / f"{name}.sh"
    work = WORK.format(markers=markers)
    script.write_text(ARRAY_SCRIPT.format(name=name, root=root, work=work))
    try:
        out = subprocess.run(
            ["sbatch", "--parsable", f"--array=0-{SUBJOBS - 1}", str(script)],
            capture_output=True,
            text=True,
            check=True,
        )
        job_id = out.stdout.strip().split(";")[0]
        while subprocess.run(
            ["squeue", "-j", job_id, "-h"], capture_output=True, text=True, check=False
        ).stdout.strip():
            time.sleep(interval)
        codes = [(root / f"exit_{i}").read_text().strip() for i in range(SUBJOBS)]
        returned = time.time()
    finally:
        cancel_named(name)
    if set(codes) != {"0"}:
        raise RuntimeError(f"poller: exit codes {codes}")
    return returned - _last_marker(markers)


def _watch_interval(backend: str) -> float:
    """The pause ``jobfleet watch`` makes between polls for ``backend`` (no --interval)."""
    return max(min(_FALLBACK_INTERVAL, get_driver(backend, {}).poll_interval), 0.05)


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def run(quick: bool = False) -> str:
    title = "## 6. Completion latency"
    local_runs, slurm_runs = (2, 1) if quick else (5, 3)
    rows, detail, notes = [], [], []
    with tempfile.TemporaryDirectory(prefix="jfbench-latency-") as tmp:
        root = Path(tmp)
        ours = [jobfleet_run(root, "local") for _ in range(local_runs)]
        floor = [local_floor(root) for _ in range(local_runs)]
        interval = _watch_interval("local")
        rows.append(target_row(
            "local: last exit -> `jobfleet watch` returns", _s(statistics.median(ours)),
            _s(statistics.median(floor)), ratio_text(statistics.median(ours),
            statistics.median(floor)), f"< the poll interval ({interval:g} s)",
            statistics.median(ours) < interval,
        ))  # fmt: skip
        detail.append(["local", f"{interval:g} s", ", ".join(_s(x) for x in ours),
                       ", ".join(_s(x) for x in floor)])  # fmt: skip
        missing = slurm_missing()
        if missing:
            notes.append(f"Slurm not measured: {missing}.")
        else:
            interval = _watch_interval("slurm")
            ours_s = [jobfleet_run(root, "slurm") for _ in range(slurm_runs)]
            base_s = [slurm_poller(root, interval) for _ in range(slurm_runs)]
            rows.append(target_row(
                "Slurm: last exit -> `jobfleet watch` returns", _s(statistics.median(ours_s)),
                _s(statistics.median(base_s)), ratio_text(statistics.median(ours_s),
                statistics.median(base_s)), f"<= poller with the same interval ({interval:g} s)"
                " + 1 s", statistics.median(ours_s) <= statistics.median(base_s) + 1.0,
            ))  # fmt: skip
            detail.append(["Slurm", f"{interval:g} s", ", ".join(_s(x) for x in ours_s),
                           ", ".join(_s(x) for x in base_s)])  # fmt: skip
    notes += [
        f"{SUBJOBS} subjobs of `{WORK.format(markers='DIR')}`; latency = the time the "
        "`jobfleet submit --watch` process (or the baseline) has returned minus the newest "
        "marker, so it includes jobfleet's exit (interpreter shut-down).",
        "The poll interval is what `jobfleet watch` uses without `--interval` (the backend "
        "driver's `poll_interval`); the Slurm poller sleeps the same between `squeue` calls.",
        "Between polls, jobfleet's Slurm watcher also looks for the exit code files of the "
        "units left (when at most 100 are) and polls as soon as all are written; the shell "
        "poller only asks `squeue`.",
    ]
    if quick:
        notes.append(f"Quick run: {local_runs} local and {slurm_runs} Slurm runs.")
    return "\n\n".join([
        title,
        "Time from the last subjob's exit to `jobfleet watch` returning, medians.",
        table(TARGET_HEADERS, rows),
        table(["backend", "poll interval", "jobfleet runs", "baseline runs"], detail),
        "\n".join(f"- {n}" for n in notes),
    ])  # fmt: skip


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

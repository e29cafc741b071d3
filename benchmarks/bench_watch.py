"""Scenario 4: what one poll cycle of the watcher costs with 10, 1,000 and ~10,000 active subjobs.

For each size, the subjobs are submitted held to the real Slurm (so they stay
active) through the fleet API, then this process runs jobfleet's real watch step
(``Fleet.watch_step``: the lease, one ``squeue`` for all active units, the store
updates, retries and the progress read; what ``jobfleet watch`` does per cycle)
several times and measures per cycle:

* scheduler calls (jobfleet's own command counter);
* CPU seconds of the watcher process itself (``time.process_time``); the CPU of
  the scheduler commands it ran (children) is reported separately.

Baseline: the naive watcher asking the scheduler once per subjob (``squeue -j
ID`` per subjob), measured in full at the smaller sizes and on a sample of
subjobs at the largest (extrapolated, labelled as such).
Targets: scheduler calls per cycle constant in N; watcher CPU per cycle < 50 ms at
10,000. Usage: python benchmarks/bench_watch.py [--quick]
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TARGET_HEADERS, table, target_row
from _slurm import bench_name, cancel_named, config, queued_tasks, slurm_missing

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, range_arguments
from jobfleet.commands import command_calls, reset_command_calls
from jobfleet.fleet import Fleet
from jobfleet.store import Store

TARGET_N = 10_000
TARGET_CPU = 0.050
HEADROOM = 1_000  # job records left free for the other users of the cluster


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def largest_size(wait: float) -> tuple[int, str]:
    """The largest N the cluster takes (waiting up to ``wait`` s for records of finished
    jobs to expire), and why it is not 10,000 when it is not."""
    limit = int(config().get("MaxJobCount", "10000"))
    deadline = time.monotonic() + wait
    while (room := limit - queued_tasks() - HEADROOM) < TARGET_N - 2000:
        if time.monotonic() > deadline:
            break
        time.sleep(5)
    if room >= TARGET_N:
        return TARGET_N, ""
    size = max(1000, room // 1000 * 1000)
    why = (
        f"Slurm here has MaxJobCount={limit} and counts every array task, so 10,000 subjobs "
        f"cannot be queued at once (with {HEADROOM} records left free for other users); "
        f"the largest size is {size:,} and the 10,000 figures are extrapolated linearly."
    )
    return size, why


def measure_jobfleet(n: int, cycles: int, root: Path) -> dict[str, float]:
    name = bench_name("watch")
    job = Job(name)
    job.working_dir = root / name
    job.cmd = ["true"]
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, n), max_subjobs=n
    )
    store = Store(root / f"{name}.db")
    fleet = Fleet(store)
    try:
        record = fleet.submit_job(job, "slurm", {"extra_directives": ["--hold"]})
        first = time.process_time()
        fleet.watch_step([record.id])  # first cycle: rebuilds the job objects once
        first_cpu = time.process_time() - first
        calls, cpu, child, wall = [], [], [], []
        for _ in range(cycles):
            reset_command_calls()
            c0, k0, w0 = time.process_time(), _children_cpu(), time.perf_counter()
            state = fleet.watch_step([record.id])[record.id]
            cpu.append(time.process_time() - c0)
            child.append(_children_cpu() - k0)
            wall.append(time.perf_counter() - w0)
            calls.append(sum(command_calls().values()))
        active = state.counts.get("submitted", 0) + state.counts.get("running", 0)
        ids = [r.native_id or "" for r in store.active("slurm")]
    finally:
        cancel_named(name)
        store.close()
    return {
        "calls_min": min(calls), "calls_max": max(calls), "cpu": statistics.median(cpu),
        "child": statistics.median(child), "wall": statistics.median(wall),
        "first_cpu": first_cpu, "active": active, "ids": ids,  # type: ignore[dict-item]
    }  # fmt: skip


def measure_naive(ids: list[str], sample: int) -> dict[str, float]:
    """One cycle of the per-subjob watcher over ``sample`` of the ids, scaled to all of them."""
    chosen = ids[:: max(1, len(ids) // sample)][:sample] if len(ids) > sample else ids
    c0, k0, w0 = time.process_time(), _children_cpu(), time.perf_counter()
    for native_id in chosen:
        subprocess.run(
            ["squeue", "--noheader", "-j", native_id, "--format=%T"],
            capture_output=True,
            check=False,
        )
    scale = len(ids) / len(chosen)
    return {
        "calls": float(len(ids)),
        "cpu": (time.process_time() - c0) * scale,
        "child": (_children_cpu() - k0) * scale,
        "wall": (time.perf_counter() - w0) * scale,
        "extrapolated": float(scale > 1),
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run(quick: bool = False) -> str:
    title = "## 4. Watching: scheduler calls and CPU per poll cycle"
    missing = slurm_missing()
    if missing:
        return f"{title}\n\nNot measured: {missing}."
    big, why = (0, "") if quick else largest_size(wait=60)
    sizes = [10, 1000] if quick else [10, 1000, big]
    cycles = 3 if quick else 8
    sample = 200 if quick else 1000
    results: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="jfbench-watch-") as tmp:
        for n in sizes:
            ours = measure_jobfleet(n, cycles, Path(tmp))
            ids: list[str] = ours.pop("ids")  # type: ignore[assignment]
            results[n] = (ours, measure_naive(ids, sample))
    rows, detail = [], []
    for n, (ours, base) in results.items():
        ext = " (extrapolated from a sample)" if base["extrapolated"] else ""
        calls = f"{ours['calls_min']:.0f}" + (
            f"-{ours['calls_max']:.0f}" if ours["calls_max"] != ours["calls_min"] else ""
        )
        rows.append(target_row(
            f"scheduler calls per cycle, {n:,} active", calls, f"{base['calls']:,.0f}{ext}",
            f"{base['calls'] / max(ours['calls_max'], 1):,.0f}x fewer", "constant in N",
            ours["calls_max"] <= results[sizes[0]][0]["calls_max"],
        ))  # fmt: skip
        rows.append([
            f"watcher CPU per cycle, {n:,} active", _ms(ours["cpu"]), _ms(base["cpu"]) + ext,
            f"{ours['cpu'] / base['cpu']:.3f}x" if base["cpu"] else "n/a", "", "",
        ])  # fmt: skip
        detail.append([
            f"{n:,}", f"{ours['active']:,.0f}", _ms(ours["cpu"]), _ms(ours["child"]),
            _ms(ours["wall"]), _ms(ours["first_cpu"]), _ms(base["cpu"]), _ms(base["child"]),
            f"{base['wall']:.2f} s{ext}",
        ])  # fmt: skip
    largest = max(results)
    cpu_at = results[largest][0]["cpu"]
    label = f"{largest:,}"
    if largest < TARGET_N and 1000 in results and largest > 1000:
        slope = (cpu_at - results[1000][0]["cpu"]) / (largest - 1000)
        cpu_at += slope * (TARGET_N - largest)
        label = f"10,000 (extrapolated from {largest:,})"
    if largest >= TARGET_N or label.startswith("10,000"):
        rows.append(target_row(
            f"watcher CPU per cycle at {label}", _ms(cpu_at), "", "", "< 50 ms",
            cpu_at < TARGET_CPU,
        ))  # fmt: skip
    notes = [
        f"Subjobs held (`--hold`) in the real Slurm, cancelled after each size; {cycles} cycles "
        "per size after a first one, medians. CPU is `time.process_time()` of the watcher "
        "process; the scheduler commands' own CPU (children) is listed apart.",
        "Baseline: one `squeue -j ID` per subjob per cycle (a per-job status loop); its CPU "
        "is mostly starting the processes.",
    ]
    if why and big in results:
        notes.append(why)
    if quick:
        notes.append("Quick run: sizes 10 and 1,000 only, sample of 200 for the baseline.")
    headers = ["N", "active seen", "watcher CPU", "children CPU", "wall", "first cycle CPU",
               "naive CPU", "naive children CPU", "naive wall"]  # fmt: skip
    return "\n\n".join([
        title,
        "One cycle of `jobfleet watch` (`Fleet.watch_step`) against held Slurm array tasks, "
        "against a watcher that runs one `squeue -j` per subjob.",
        table(TARGET_HEADERS, rows),
        "Per cycle, medians:",
        table(headers, detail),
        "\n".join(f"- {n}" for n in notes),
    ])  # fmt: skip


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

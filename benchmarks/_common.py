"""Helpers shared by the benchmark scenarios: timing, peak memory, machine, Markdown.

The harness contract (every ``benchmarks/bench_<name>.py`` follows it):

* ``run(quick: bool = False) -> str`` returns one Markdown section starting with
  ``## N. Title``: what was measured, a table, notes.
* A target appears as a table row whose LAST cell is :data:`MET` or
  :data:`MISSED` and whose second-to-last cell states the target;
  :func:`target_row` builds such rows. ``run_all.py`` collects them into the
  summary table, so a row needs no other shape.
* A scenario whose service is missing (no Slurm, ...) returns a section saying
  so instead of raising.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MET",
    "MISSED",
    "REPO",
    "in_subprocess",
    "jobfleet_cli",
    "machine",
    "median",
    "python_process",
    "ratio_text",
    "table",
    "target_row",
    "timed",
]

REPO = Path(__file__).resolve().parent.parent
MET = "met"
MISSED = "**missed**"


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds ``fn()`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ratio_text(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base > 0 else "n/a"


def target_row(what: str, ours: str, base: str, ratio: str, target: str, met: bool) -> list[str]:
    """One row of a target table: ``what | jobfleet | baseline | ratio | target | met``."""
    return [what, ours, base, ratio, target, MET if met else MISSED]


TARGET_HEADERS = ["measured", "jobfleet", "baseline", "ratio", "target", "met"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_HWM_PRELUDE = """\
import atexit, os, sys
def _jf_bench_hwm():
    with open('/proc/self/status') as status, open(os.environ['JF_BENCH_HWM'], 'w') as out:
        out.write(next(l for l in status if l.startswith('VmHWM:')).split()[1])
atexit.register(_jf_bench_hwm)
"""


def python_process(
    code: str, args: Sequence[str], *, timeout: float | None = None
) -> tuple[float, float, str]:
    """Run ``python -c code args...`` in a fresh interpreter: wall seconds, peak RSS (MB), stdout.

    The peak is the child's own ``VmHWM``, written by the child itself at exit:
    ``ru_maxrss`` of a forked child would include the parent's memory from before
    its ``exec``.
    """
    with tempfile.NamedTemporaryFile(prefix="jf-bench-hwm-") as hwm:
        env = {**os.environ, "JF_BENCH_HWM": hwm.name, "TERM": "dumb"}
        argv = [sys.executable, "-c", _HWM_PRELUDE + code, *args]
        start = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{argv[3:]} exited {done.returncode}: {done.stderr[-2000:]}")
        peak_kb = Path(hwm.name).read_text().strip()
    return seconds, int(peak_kb) / 1024, done.stdout


def in_subprocess(module: str, function: str, *args: Any) -> tuple[dict[str, Any], float, float]:
    """``module.function(*args)`` (a benchmarks module) in a fresh interpreter.

    Returns its JSON result, wall seconds and peak RSS in MB.
    """
    code = (
        "import json; sys.path.insert(0, sys.argv[1]);"
        f"from {module} import {function} as f;"
        "print(json.dumps(f(*json.loads(sys.argv[2]))))"
    )
    seconds, peak, out = python_process(code, [str(Path(__file__).parent), json.dumps(list(args))])
    return json.loads(out.strip().splitlines()[-1]), seconds, peak


def jobfleet_cli(args: Sequence[str], *, timeout: float | None = None) -> tuple[float, float]:
    """``jobfleet ARGS...`` in a fresh interpreter (as the installed script runs it).

    Returns wall seconds and peak RSS in MB; a non-zero exit raises.
    """
    code = (
        "import runpy; sys.argv = ['jobfleet', *sys.argv[1:]];"
        "runpy.run_module('jobfleet.cli', run_name='__main__')"
    )
    seconds, peak, _ = python_process(code, args, timeout=timeout)
    return seconds, peak


def _first_line(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else None


def _disk_type(path: Path) -> str:
    """``SSD``/``HDD`` for the block device holding ``path`` when sysfs tells, else unknown."""
    try:
        dev = os.stat(path).st_dev
        sys_dir = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
        for candidate in (sys_dir, sys_dir.resolve().parent):
            flag = candidate / "queue" / "rotational"
            if flag.exists():
                kind = "rotational" if flag.read_text().strip() == "1" else "non-rotational"
                return f"{candidate.resolve().name}, {kind} (as the kernel reports it)"
    except OSError:
        pass
    fs = _first_line(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)])
    return f"unknown ({fs or '?'} filesystem)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    return "unknown"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on, as (label, value) pairs."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("CPUs", f"{os.cpu_count()} x {_cpu_model()}"),
        ("RAM", _ram_gb()),
        (f"disk ({tmp})", _disk_type(tmp)),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("SQLite", __import__("sqlite3").sqlite_version),
        ("Slurm", _first_line(["sinfo", "--version"]) or "not installed"),
        ("Grid Engine", _first_line(["qstat", "-help"]) or "not installed"),
        ("load average at start", load),
    ]


def memory_fs() -> str | None:
    """A memory file system to run in as well (``/dev/shm`` on Linux), if there is one.

    On the disk of these machines, creating a file costs 0.15 to 1 ms depending on
    how many were deleted shortly before; in memory, what is left is each side's
    own work, so both places are measured.
    """
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "/dev/shm" and fields[2] == "tmpfs":
                    return fields[1]
    except OSError:
        pass
    return None

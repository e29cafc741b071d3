"""Slurm helpers of the scheduler scenarios (3, 4, 6): is it there, what it allows, clean-up,
and counting ``sbatch``/``squeue`` calls of any program through wrappers on ``PATH``.

Every job a scenario submits carries a unique name (:func:`bench_name`) so that
:func:`cancel_named` removes exactly those jobs and nothing of the other users of
the cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "bench_name",
    "call_log",
    "cancel_named",
    "config",
    "logged_calls",
    "queued_tasks",
    "slurm_missing",
]


def slurm_missing() -> str | None:
    """Why Slurm cannot be used here, or ``None`` when it answers."""
    for command in ("sbatch", "squeue", "scancel", "scontrol"):
        if shutil.which(command) is None:
            return f"`{command}` not found (start the cluster with `ci/slurm/start.sh`)"
    try:
        subprocess.run(
            ["squeue", "--noheader", "--me"], capture_output=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"Slurm does not answer (`squeue` failed: {err})"
    return None


def config() -> dict[str, str]:
    """``scontrol show config`` as ``{key: value}``."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True)
    pairs = (line.partition("=") for line in out.stdout.splitlines())
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and " " not in k.strip()}


def queued_tasks() -> int:
    """Job records the controller holds now (array tasks counted one by one)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--array", "--states=all", "--format=%i"],
        capture_output=True,
        text=True,
        check=False,
    )
    return len(out.stdout.splitlines())


def bench_name(scenario: str) -> str:
    """A job name no one else on the cluster uses."""
    return f"jfbench-{scenario}-{uuid.uuid4().hex[:8]}"


def cancel_named(name: str) -> None:
    """Cancel every job called ``name`` (the benchmark's own, and only those)."""
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, check=False)


@contextmanager
def call_log(directory: Path, commands: Sequence[str]) -> Iterator[Path]:
    """Wrap ``commands`` with scripts on ``PATH`` that log each call, then run the real one.

    Yields the log file (one line per call: the command's name). Works for any
    program, including ones that do not use jobfleet's command counter (submitit).
    """
    bin_dir = directory / "wrapped-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = directory / "calls.log"
    log.touch()
    for command in commands:
        real = shutil.which(command)
        if real is None:
            raise FileNotFoundError(command)
        wrapper = bin_dir / command
        wrapper.write_text(f'#!/bin/sh\necho {command} >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{old_path}"
    try:
        yield log
    finally:
        os.environ["PATH"] = old_path


def logged_calls(log: Path, command: str) -> int:
    """How many calls of ``command`` the wrapper log holds."""
    return sum(1 for line in log.read_text().splitlines() if line.strip() == command)

"""The ``sge_cell`` session fixture: a Grid Engine cell that answers, or a clear skip.

Start the cell with ``ci/sge/start.sh`` (as root). Outside CI a missing cell skips the
tests with a one-line reason; with ``CI=true`` and ``JOBFLEET_SGE=1`` it fails them.
Import the fixture into a test module (``from backends.sge_fixture import sge_cell``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["sge_cell", "sge_cell_problem"]


def sge_cell_problem() -> str | None:
    """``None`` if a Grid Engine cell runs jobs here, else why not (one line)."""
    missing = [c for c in ("qsub", "qstat", "qacct", "qdel", "qconf") if shutil.which(c) is None]
    if missing:
        return f"command not found: {', '.join(missing)} (no Grid Engine client installed)"
    try:
        proc = subprocess.run(
            ["qstat", "-f", "-q", "all.q"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "qstat did not answer within 20 s"
    said = (proc.stderr or proc.stdout).strip().splitlines()
    if proc.returncode != 0:
        return f"qstat failed: {said[-1] if said else proc.returncode}"
    instances = [line.split() for line in proc.stdout.splitlines() if line.startswith("all.q@")]
    usable = [f for f in instances if len(f) == 5]  # a sixth column is a state such as "au" or "E"
    if not usable:
        return f"queue all.q has no usable instance: {[' '.join(f) for f in instances]}"
    return None


@pytest.fixture(scope="session")
def sge_cell() -> None:
    """Skip (or, in CI with JOBFLEET_SGE=1, fail) when no Grid Engine cell answers."""
    why = sge_cell_problem()
    if why is None:
        return
    if os.environ.get("CI") == "true" and os.environ.get("JOBFLEET_SGE") == "1":
        pytest.fail(f"Grid Engine must run in CI but does not: {why}")
    pytest.skip(f"no Grid Engine cell: {why}")

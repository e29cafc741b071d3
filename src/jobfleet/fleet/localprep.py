"""Preparing local units: each working directory written, recorded in batches as it is ready.

A runner watching the submission (``submit --watch``) starts units as soon as
they are recorded, so the first few are recorded at once, then batches at
most :data:`_RECORD_EVERY` seconds apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from jobfleet.fleet.driver import RecordSubmitted, subjob_id_of
from jobfleet.fleet.unitfiles import forget_attempt
from jobfleet.job import Job
from jobfleet.workdir import prepare

__all__ = ["prepare_units", "workdir_text"]

#: Prepared units are recorded in the store at least this many at a time, or after this long;
#: the first few at once, so that a runner watching the submission can start them.
_RECORD_BATCH = 1000
_RECORD_EVERY = 0.1
_RECORD_FIRST = 16


def prepare_units(
    job: Job, units: Sequence[Job], record: RecordSubmitted, render: Callable[[Job], str]
) -> None:
    """Write each unit's working directory (wrapper from ``render``) and record it ``local``."""
    # One listing instead of a stat per unit: only a directory already there can
    # hold a previous attempt to forget (a resubmission, a --resume).
    try:
        existing = set(os.listdir(job.working_dir))
    except FileNotFoundError:
        existing = set()
    batch: list[tuple[int, str]] = []
    last = time.monotonic()
    limit = _RECORD_FIRST
    for unit in units:
        workdir = workdir_text(unit)  # a string: a big job prepares 100,000s of units
        if unit is job or os.path.basename(workdir) in existing:
            forget_attempt(Path(workdir))
        prepare(unit, render(unit), workdir=workdir)
        batch.append((subjob_id_of(unit), "local"))
        # Commit in chunks (each a transaction) so progress shows and little is redone.
        if len(batch) >= limit or time.monotonic() - last > _RECORD_EVERY:
            record(batch)
            batch, last, limit = [], time.monotonic(), _RECORD_BATCH
    if batch:
        record(batch)


def workdir_text(unit: Job) -> str:
    """``unit.working_dir`` as a string, for a subjob without building a ``Path``: its id
    in its job's directory (:attr:`SubJob.working_dir`). Runs per unit prepared and started."""
    parent = getattr(unit, "parent", None)  # only a SubJob has one
    if parent is None:
        return os.fspath(unit.working_dir)
    return f"{os.fspath(parent.working_dir)}/{subjob_id_of(unit)}"

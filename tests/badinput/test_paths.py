"""Paths that lead out of the working area, and splits that cannot be satisfied.

Output patterns pointing outside the working directory are refused naming the
field; a symbolic link out of the working directory is not followed when
outputs are collected; an arguments split with more tuples than ``max_subjobs``
fails before anything is written or run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, SpecError, range_arguments
from jobfleet.backends.local import Local
from jobfleet.errors import JobfleetError
from jobfleet.workdir import check_job, collect_outputs
from reliability_report import Reliability

_OUTSIDE = ["../x", "/etc/*", "**/../../x", "a/../../b", "/"]


def _job(root: Path) -> Job:
    job = Job("paths")
    job.working_dir = root / "work"
    job.output_dir = root / "out"
    job.cmd = ["true"]
    return job


def test_output_patterns_outside_are_refused(tmp_path: Path, reliability: Reliability) -> None:
    """Output patterns like ``../x``, ``/etc/*`` and ``**/../../x`` are refused naming the field."""
    accepted: list[str] = []
    for pattern in _OUTSIDE:
        job = _job(tmp_path)
        job.output_patterns = [pattern]
        try:
            check_job(job)
        except SpecError as err:
            if "field 'output_patterns'" not in str(err) or "\n" in str(err):
                accepted.append(f"{pattern}: {err}")
        else:
            accepted.append(pattern)
    reliability.record(
        cases=len(_OUTSIDE), unit="patterns", faults=len(_OUTSIDE), lost=len(accepted),
        detail="output patterns pointing outside the working directory",
    )  # fmt: skip
    assert not accepted


def test_symlink_out_of_the_working_dir_is_not_collected(
    tmp_path: Path, reliability: Reliability
) -> None:
    """A symlink in the working dir pointing to a secret outside it is not copied to the outputs."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n", encoding="utf-8")
    job = _job(tmp_path)
    job.output_patterns = ["*.txt", "sub/**"]
    (job.working_dir / "sub").mkdir(parents=True)
    (job.working_dir / "result.txt").write_text("ok\n", encoding="utf-8")
    (job.working_dir / "leak.txt").symlink_to(secret)
    (job.working_dir / "sub" / "leak").symlink_to(tmp_path)
    copied = collect_outputs(job)
    leaked = [p for p in job.output_dir.rglob("*") if p.is_file() and "secret" in p.read_text()]
    reliability.record(
        cases=3, unit="files", faults=2, lost=len(leaked),
        detail="symlinks to a file and to a folder outside the working dir",
    )  # fmt: skip
    assert not leaked
    assert job.output_dir / "result.txt" in copied


def test_max_subjobs_that_cannot_be_satisfied(tmp_path: Path, reliability: Reliability) -> None:
    """10 argument tuples with ``max_subjobs=3``: a clear error, nothing written or run."""
    job = _job(tmp_path)
    marker = tmp_path / "ran"
    job.cmd = ["touch", str(marker)]
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, 10), max_subjobs=3
    )
    backend = Local()
    try:
        with pytest.raises(JobfleetError, match="max_subjobs") as info:
            backend.submit(job)
    finally:
        backend.shutdown()
    reliability.record(
        cases=1, unit="jobs", faults=1,
        lost=int(job.working_dir.exists()) + int(marker.exists()) + int(bool(job.subjobs)),
        detail="ArgumentsSplitter(max_subjobs=3) over 10 tuples",
    )  # fmt: skip
    assert "\n" not in str(info.value)
    assert not job.working_dir.exists() and not marker.exists() and not job.subjobs

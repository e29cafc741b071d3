"""The scheduler forgets finished jobs at once and keeps no accounting: the exit code files decide.

The fakes of tests/fakesched drop a job the moment it ends (``forget_finished``: gone
from queue and history alike, so ``condor_history``, ``qacct``, ``bjobs -a``,
and ``qstat -x`` know nothing of it). Real Slurm gets wrappers
(tests/faults/_wrapped.py): ``sacct`` answers as when accounting storage is disabled,
and ``squeue`` lists only pending and running jobs, as after ``MinJobAge``. Some
subjobs exit 0, some 3: each must end with its right status and exit code, through
``jobfleet submit`` and ``jobfleet watch``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import db, run_jobfleet  # noqa: F401
from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401
from reliability_report import Reliability

from ._fakes import fake_case_fixture, personality  # noqa: F401
from ._wrapped import Fault, install_wrappers, marker_lines, unique_name, write_spec

N = 20
#: Every fourth subjob fails with exit code 3.
SCRIPT = "echo once >> {marks}/$1.mark; sleep 0.3; [ $(($1 % 4)) != 3 ] || exit 3"
FAILING = {i for i in range(N) if i % 4 == 3}

_ACTIVE_SLURM_STATES = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,STAGE_OUT"

# DIRAC is left out: its exit code files come back only in output sandboxes, which a WMS
# that forgot the job cannot hand out, so such units can only end "lost" after the
# exit code grace period (test_lost_jobs.py shows that).
fake_case = fake_case_fixture("htcondor", "lsf", "openpbs", "torque", "sge")


def _run(spec: Path, name: str) -> tuple[int, dict[str, Any]]:
    submitted = run_jobfleet("submit", str(spec), timeout=120)
    assert submitted.code == 0, submitted.err
    watched = run_jobfleet("watch", name, "--interval", "0.2", "--quiet", timeout=240)
    status: dict[str, Any] = json.loads(run_jobfleet("status", name, "--json").out)
    return watched.code, status


def _wrong(status: dict[str, Any]) -> list[str]:
    """Subjobs whose status or exit code is not what their script did."""
    wrong = []
    for sub in status["subjobs"]:
        expected = ("failed", 3) if sub["id"] in FAILING else ("completed", 0)
        if (sub["status"], sub["exit_code"]) != expected:
            wrong.append(f"{sub['id']}: {sub['status']} {sub['exit_code']} {sub['reason']}")
    return wrong


def _check(watch_code: int, status: dict[str, Any], runs: dict[int, int]) -> None:
    assert _wrong(status) == []
    assert status["counts"] == {"completed": N - len(FAILING), "failed": len(FAILING)}
    assert all(s["reason"] == "exit code 3" for s in status["subjobs"] if s["id"] in FAILING)
    assert watch_code == 1  # some failed
    assert runs == dict.fromkeys(range(N), 1)


def test_fake_scheduler_forgets_finished_jobs(
    fake_case: tuple[str, str, str],
    fake_scheduler: FakeHandle,  # noqa: F811
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Fake scheduler forgetting every job the moment it ends (no queue entry, no history);
    20 subjobs, 5 exiting 3: every status and exit code comes right from the exit code files."""
    backend, fake, options = fake_case
    fake_scheduler.configure(forget_finished=True)
    marks = tmp_path / "marks"
    marks.mkdir()
    script = SCRIPT.format(marks=marks)
    spec = write_spec(tmp_path / "amnesia.toml", "amnesia", backend, N, script, options=options)
    code, status = _run(spec, "amnesia")

    runs = marker_lines(marks)
    forgotten = N - len(fake_scheduler.jobs())  # all of them, once the job has ended
    wrong = _wrong(status)
    reliability.record(
        backend=f"{fake} (fake{', ' + options if options else ''})", cases=N,
        unit="subjobs", faults=forgotten, lost=len(wrong),
        duplicated=sum(1 for c in runs.values() if c > 1),
        detail=f"every finished job forgotten at once, no history; {len(FAILING)} exit 3; "
        f"wrong status or exit code: {wrong[:3]}",
    )  # fmt: skip
    assert forgotten == N
    _check(code, status, runs)


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_real_slurm_without_accounting_forgetting_finished_jobs(
    db: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability: Reliability,
) -> None:
    """Real Slurm with sacct failing as when accounting storage is disabled and squeue
    listing only pending and running jobs; 20 subjobs, 5 exiting 3: every status and exit
    code comes right from the exit code files."""
    disabled = Fault("Slurm accounting storage is disabled", 1, rate=1.0, max_streak=10**9)
    forgetful = Fault("", rate=0.0, rewrite=("--states=all", f"--states={_ACTIVE_SLURM_STATES}"))
    wrappers = install_wrappers(
        tmp_path / "wrapped", {"sacct": disabled, "squeue": forgetful}, monkeypatch
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    name = unique_name("amnesia")
    spec = write_spec(tmp_path / "amnesia.toml", name, "slurm", N, SCRIPT.format(marks=marks))
    code, status = _run(spec, name)

    runs = marker_lines(marks)
    refused = wrappers.failures()[("sacct", "before")]
    wrong = _wrong(status)
    reliability.record(
        backend="slurm (real, wrapped sacct and squeue)", cases=N, unit="subjobs",
        faults=refused, lost=len(wrong), duplicated=sum(1 for c in runs.values() if c > 1),
        detail=f"sacct refused {refused} times (accounting disabled), squeue shows no finished "
        f"job; {len(FAILING)} exit 3; wrong status or exit code: {wrong[:3]}",
    )  # fmt: skip
    _check(code, status, runs)

"""Every scheduler command fails transiently 30% of the time; every job still completes once.

The fakes of tests/fakesched fail on purpose (``fail_rate``), their failing calls
doing their work first (the reply is lost); real Slurm and Grid
Engine get wrapper scripts first on ``PATH`` (tests/faults/_wrapped.py) that do the
same with the tools' own messages. Each case goes through the command line:
``jobfleet submit`` then ``jobfleet watch``. "Completed" is counted from marker files
the subjobs write, "submitted once" from the scheduler's own records.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from backends.sge_fixture import sge_cell  # noqa: F401
from cli.conftest import db, run_jobfleet  # noqa: F401
from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401
from helpers import wait_until
from reliability_report import Reliability

from ._fakes import fake_case_fixture, personality  # noqa: F401
from ._wrapped import (
    Fault,
    install_wrappers,
    marker_lines,
    sge_faults,
    sge_tasks,
    slurm_faults,
    slurm_tasks,
    unique_name,
    write_spec,
)

N = 20
SCRIPT = "echo once >> {marks}/$1.mark; sleep 0.2"

#: The command each personality submits with.
SUBMIT = {"htcondor": "condor_submit", "lsf": "bsub", "pbs": "qsub", "sge": "qsub",
          "dirac": "dirac-wms-job-submit"}  # fmt: skip


def _seed_losing_first_reply(command: str, rate: float) -> int:
    """The first seed whose draw fails the first call of ``command`` (as the fake draws it,
    fakesched.core.FakeScheduler.roll_failure), so every case meets a lost submission reply."""
    return next(s for s in range(1000) if random.Random(f"{s}:{command}:0").random() < rate)


fake_case = fake_case_fixture()


def _submit_and_watch(spec: Path, name: str) -> dict[str, object]:
    submitted = run_jobfleet("submit", str(spec), timeout=180)
    assert submitted.code == 0, submitted.err
    watched = run_jobfleet("watch", name, "--interval", "0.2", "--quiet", timeout=240)
    assert watched.code == 0, watched.err
    status: dict[str, object] = json.loads(run_jobfleet("status", name, "--json").out)
    return status


def test_fake_scheduler_failing_thirty_percent(
    fake_case: tuple[str, str, str],
    fake_scheduler: FakeHandle,  # noqa: F811
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Fake scheduler: every command fails 30% of the time, each failing call doing its work
    first (the reply is lost); all 20 subjobs complete, each submitted and run once."""
    backend, fake, options = fake_case
    seed = _seed_losing_first_reply(SUBMIT[fake], 0.3)
    fake_scheduler.configure(fail_rate=0.3, fail_after=True, seed=seed)
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = write_spec(
        tmp_path / "flaky.toml", "flaky", backend, N, SCRIPT.format(marks=marks), options=options
    )
    status = _submit_and_watch(spec, "flaky")

    records = fake_scheduler.jobs()
    faults = sum(fake_scheduler.failures().values())
    runs = marker_lines(marks)
    lost = N - len(runs)
    duplicated = max(0, len(records) - N) + sum(1 for c in runs.values() if c > 1)
    reliability.record(
        backend=f"{fake} (fake{', ' + options if options else ''})",
        cases=N, unit="subjobs", faults=faults, lost=lost, duplicated=duplicated,
        detail=f"every command fails 30%, after doing its work (reply lost): "
        f"{dict(sorted(fake_scheduler.failures().items()))}",
    )  # fmt: skip
    assert fake_scheduler.failures().get(SUBMIT[fake], 0) >= 1  # a reply was lost
    assert status["counts"] == {"completed": N}
    assert runs == dict.fromkeys(range(N), 1)
    assert len(records) == N, f"{len(records)} scheduler records for {N} subjobs"


def _real_scheduler_case(
    backend: str,
    faults: dict[str, Fault],
    tasks_of: Callable[[str], dict[str, list[str]]],
    first_index: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability: Reliability,
) -> None:
    wrappers = install_wrappers(tmp_path / "wrapped", faults, monkeypatch)
    marks = tmp_path / "marks"
    marks.mkdir()
    name = unique_name("flaky")
    spec = write_spec(
        tmp_path / "flaky.toml", name, backend, N, SCRIPT.format(marks=marks), poll=0.5
    )
    status = _submit_and_watch(spec, name)

    # the scheduler's accounting: every task under exactly one submission
    wanted = {str(i + first_index) for i in range(N)}
    tasks = wait_until(
        lambda: (found := tasks_of(name)) and wanted <= set(found) and found,
        timeout=60, what=f"the accounting records of {name}",
    )  # fmt: skip
    runs = marker_lines(marks)
    submissions = {number for numbers in tasks.values() for number in numbers}
    duplicated = sum(len(numbers) - 1 for numbers in tasks.values())
    duplicated += sum(1 for c in runs.values() if c > 1)
    failures = wrappers.failures()
    reliability.record(
        backend=f"{backend} (real, wrapped commands)", cases=N, unit="subjobs",
        faults=sum(failures.values()), lost=N - len(runs), duplicated=duplicated,
        detail="every command fails 30% with the tool's own message; the first submission "
        f"ran and then reported failure (lost reply): {dict(sorted(failures.items()))}",
    )  # fmt: skip
    submit = "sbatch" if backend == "slurm" else "qsub"
    assert failures[(submit, "after")] >= 1
    assert status["counts"] == {"completed": N}
    assert runs == dict.fromkeys(range(N), 1)
    assert set(tasks) == wanted and duplicated == 0, tasks
    assert len(submissions) == 1, f"{len(submissions)} submissions: {sorted(submissions)}"


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_real_slurm_commands_failing_thirty_percent(
    db: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability: Reliability,
) -> None:
    """Real Slurm, sbatch/squeue/sacct/scancel/scontrol wrapped to fail 30% of the time (the
    first sbatch submits and then fails: a lost reply); 20 subjobs complete, one array in sacct."""
    _real_scheduler_case("slurm", slurm_faults(0.3), slurm_tasks, 0, tmp_path, monkeypatch,
                         reliability)  # fmt: skip


@pytest.mark.sge
@pytest.mark.usefixtures("sge_cell")
def test_real_grid_engine_commands_failing_thirty_percent(
    db: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability: Reliability,
) -> None:
    """Real Grid Engine, qsub/qstat/qacct/qdel/qconf wrapped to fail 30% of the time (the first
    qsub submits and then fails: a lost reply); 20 subjobs complete, one job in qacct."""
    _real_scheduler_case("sge", sge_faults(0.3), sge_tasks, 1, tmp_path, monkeypatch, reliability)

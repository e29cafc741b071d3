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
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.sge_fixture import sge_cell  # noqa: F401
from cli.conftest import db, run_jobfleet  # noqa: F401
from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401

from ._wrapped import (
    marker_lines,
    write_spec,
)

N = 20
SCRIPT = "echo once >> {marks}/$1.mark; sleep 0.2"

# (backend name in jobfleet, fake personality, extra backend options), as in
# tests/cli/test_watcher_killed.py
FAKES = {
    "htcondor": ("htcondor", "htcondor", ""),
    "lsf": ("lsf", "lsf", ""),
    "openpbs": ("pbs", "pbs", 'flavour = "openpbs"'),
    "torque": ("pbs", "pbs", 'flavour = "torque"'),
    "sge": ("sge", "sge", ""),
    "dirac": ("dirac", "dirac", ""),
}


#: The command each personality submits with.
SUBMIT = {"htcondor": "condor_submit", "lsf": "bsub", "pbs": "qsub", "sge": "qsub",
          "dirac": "dirac-wms-job-submit"}  # fmt: skip


def _seed_losing_first_reply(command: str, rate: float) -> int:
    """The first seed whose draw fails the first call of ``command`` (as the fake draws it,
    fakesched.core.FakeScheduler.roll_failure), so every case meets a lost submission reply."""
    return next(s for s in range(1000) if random.Random(f"{s}:{command}:0").random() < rate)


@pytest.fixture(params=list(FAKES))
def fake_case(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, str]]:
    if request.param in ("openpbs", "torque"):
        monkeypatch.setenv("FAKESCHED_PBS_FLAVOUR", request.param)
    yield FAKES[request.param]


@pytest.fixture
def personality(fake_case: tuple[str, str, str]) -> str:
    return fake_case[1]


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
    reliability: object,
) -> None:
    """Fake scheduler: every command fails 30% of the time, each failing call doing its work
    first (the reply is lost); all 20 subjobs complete, each submitted and run once."""
    backend, personality, options = fake_case
    seed = _seed_losing_first_reply(SUBMIT[personality], 0.3)
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
    reliability.record(  # type: ignore[attr-defined]
        backend=f"{personality} (fake{', ' + options if options else ''})",
        cases=N, unit="subjobs", faults=faults, lost=lost, duplicated=duplicated,
        detail=f"every command fails 30%, after doing its work (reply lost): "
        f"{dict(sorted(fake_scheduler.failures().items()))}",
    )  # fmt: skip
    assert fake_scheduler.failures().get(SUBMIT[personality], 0) >= 1  # a reply was lost
    assert status["counts"] == {"completed": N}
    assert runs == dict.fromkeys(range(N), 1)
    assert len(records) == N, f"{len(records)} scheduler records for {N} subjobs"

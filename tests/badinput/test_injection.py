"""Hostile job names, arguments, working-directory paths and backend options.

Every backend runs a job whose name, arguments and working directory are full of
shell metacharacters (``$(touch CANARY)``, backticks, ``;``, quotes, unicode,
a 10,000-character name). The canary file must never appear, the program must
get its arguments byte for byte, and the scheduler's copy of the name must be
one it accepts, while jobfleet keeps the user's name.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401
from jobfleet import Job, SpecError, monitor_jobs
from jobfleet.backends.base import Backend
from jobfleet.backends.dirac import Dirac
from jobfleet.backends.htcondor import HTCondor
from jobfleet.backends.local import Local
from jobfleet.backends.lsf import LSF
from jobfleet.backends.pbs import PBS
from jobfleet.backends.sge import GridEngine
from reliability_report import Reliability


def hostile(canary: Path) -> list[str]:
    """Strings that run ``touch canary`` if anything ever hands them to a shell."""
    return [
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"; touch {canary}",
        f"' ; touch {canary} ; '",
        f'" ; touch {canary} ; "',
        f"\n touch {canary}\n",
        f"| touch {canary}",
        f"&& touch {canary}",
        "é☃ 日本 \t tab",
        "-N evil",
    ]


def _name(canary: Path) -> str:
    return f"1st $(touch {canary}) `x`;'\"\n#SBATCH --evil [0] -J é" + "n" * 10_000


def _job(root: Path, canary: Path, *, dirs: str = "hostile") -> Job:
    """A job with hostile everything; its working directory per ``dirs``.

    ``hostile``: metacharacters of every kind; ``no-dollar``: no ``$`` (which
    HTCondor expands); ``plain``: only what a DIRAC JDL can hold.
    """
    job = Job(_name(canary))
    job.working_dir = (
        root
        / {
            "hostile": f"w $(touch {canary}) `touch {canary}` ;é'\"",
            "no-dollar": f"w `touch {canary}` ;é'\" &&",
            "plain": "w@host:+~-x",
        }[dirs]
    )
    job.output_dir = job.working_dir / "out"
    job.cmd = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
    job.args = hostile(canary)
    return job


# What each scheduler accepts as a job name (see the module docstring of each backend).
_NAME_RULES: dict[str, re.Pattern[str]] = {
    "slurm": re.compile(r"^[^\n]{1,64}$"),
    "sge": re.compile(r"^[^\d/:@\\*?\s][^/:@\\*?\s]{0,63}$"),
    "lsf": re.compile(r"^[^\[\]\s]{1,64}$"),
    "htcondor": re.compile(r"^[^\n]{1,64}$"),
    "pbs": re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$"),  # Torque: 15 characters
    "dirac": re.compile(r"^[^\"\n\\]{1,64}$"),
}


def _run(backend: Backend, job: Job) -> None:
    try:
        backend.submit(job)
        assert monitor_jobs([job], heartbeat=0.5) == 0
    finally:
        if isinstance(backend, Local):
            backend.shutdown()


def _check_ran_as_given(job: Job, canary: Path) -> list[str]:
    """What the program received (it must be ``job.args``); the canary must be absent."""
    got: list[str] = json.loads((job.working_dir / "stdout").read_text(encoding="utf-8"))
    assert not canary.exists(), "a hostile string was executed"
    return got


@pytest.mark.parametrize(
    "fake_scheduler", ["htcondor", "lsf", "pbs", "sge", "dirac"], indirect=True
)
def test_fake_schedulers_run_hostile_jobs_as_given(
    fake_scheduler: FakeHandle,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Hostile name, arguments and working directory, run for real by the fake scheduler.

    The canary file never appears, the program receives its arguments byte for
    byte, and the name the scheduler got follows its rules.
    """
    canary = tmp_path / "CANARY"
    job = _job(tmp_path, canary)
    backend_class = {"htcondor": HTCondor, "lsf": LSF, "pbs": PBS, "sge": GridEngine,
                     "dirac": Dirac}[fake_scheduler.personality]  # fmt: skip
    options = {"flavour": "torque"} if fake_scheduler.personality == "pbs" else {}
    if fake_scheduler.personality == "htcondor":
        # HTCondor expands $(...) in submit files: such a path is refused, nothing submitted.
        with pytest.raises(SpecError, match="cannot go into an HTCondor submit file"):
            backend_class(backend_args=options).submit(job)
        assert not fake_scheduler.jobs()
        job = _job(tmp_path, canary, dirs="no-dollar")
    if fake_scheduler.personality == "dirac":
        # A JDL holds only a few characters in a path: refused, nothing submitted.
        with pytest.raises(SpecError, match="cannot be written in a DIRAC JDL"):
            backend_class(backend_args=options).submit(job)
        assert not fake_scheduler.jobs()
        job = _job(tmp_path, canary, dirs="plain")
    _run(backend_class(backend_args=options), job)
    got = _check_ran_as_given(job, canary) if (job.working_dir / "stdout").exists() else []
    names = [record.name for record in fake_scheduler.jobs()]
    rule = _NAME_RULES[fake_scheduler.personality]
    bad_names = [n for n in names if not rule.match(n)]
    reliability.record(
        backend=fake_scheduler.personality, cases=len(job.args) + 2, unit="hostile strings",
        faults=len(job.args) + 2, lost=int(canary.exists()) + int(got != job.args) + len(bad_names),
        detail="name, working dir and 10 arguments with $(), backticks, ;, quotes, newlines",
    )  # fmt: skip
    assert not canary.exists()
    assert got == job.args
    assert names and not bad_names, names
    assert job.name == _name(canary)  # jobfleet keeps the user's name

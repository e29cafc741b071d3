"""The submitting process is SIGKILLed half-way through a 2,000-subjob submission.

The scheduler is the fake LSF of tests/fakesched with arrays of at most 100
tasks, so the submission is 20 ``bsub`` calls. A ``bsub`` wrapper first on
``PATH`` holds the 6th call and tells the test, which then kills ``jobfleet
submit``: the kill lands deterministically in the middle, with 500 subjobs
handed over and recorded and 1,500 not. The wrapper holds the call either
before it reaches the scheduler, or after the scheduler accepted it (100 more
subjobs queued, but the answer never reaches jobfleet, so the store cannot
know their ids). ``jobfleet submit --resume`` must then send exactly the
missing ones, finding the accepted call by its tag: the fake's own records
and the marker files the subjobs write show each subjob submitted and run
exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from cli.conftest import db  # noqa: F401
from fakesched.fixture import FakeHandle, fake_scheduler_fixture
from helpers import wait_until
from jobfleet.store import Store
from reliability_report import Reliability

from ._support import jobfleet_process, marker_lines, run_jobfleet
from ._wrapped import unique_name, write_spec

N = 2000
ARRAY = 100  # tasks per bsub call
STOP_AT = 6  # the bsub call the kill lands in

lsf = fake_scheduler_fixture("lsf", queue_delay=0.0, max_running=32)

SPEC = """
name = "bigsubmit"
cmd = ["bash", "-c", "echo once >> {marks}/$1.mark", "unit"]
working_dir = "{work}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "lsf"
max_array_size = {array}
poll_interval = 0.5
"""

GATE = """#!/bin/sh
# Count bsub calls; hold call {stop} (after the scheduler took it, if {reached}), say so.
n=$(( $(cat {state}/count 2>/dev/null || echo 0) + 1 ))
echo $n > {state}/count
if [ "$n" -eq {stop} ]; then
    if {reached}; then {real} "$@" > {state}/lost-answer; fi
    echo $$ > {state}/stopped.pid
    exec sleep 600
fi
exec {real} "$@"
"""


def _submitted(db_path: Path) -> Counter[str]:
    with Store(db_path) as store:
        return Counter(str(r.status) for r in store.subjobs(store.get_job("bigsubmit").id))


@pytest.mark.parametrize("reached", [False, True], ids=["call-lost", "answer-lost"])
def test_killed_submission_is_resumed_exactly(
    lsf: FakeHandle,
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
    reached: bool,
) -> None:
    """SIGKILL ``jobfleet submit`` of 2,000 subjobs (fake LSF) in its 6th of 20 ``bsub``
    calls; ``submit --resume`` sends exactly the missing ones (1,500, or 1,400 when the
    scheduler had already accepted the 6th call)."""
    marks, gate_dir, bin_dir = tmp_path / "marks", tmp_path / "gate", tmp_path / "gatebin"
    for d in (marks, gate_dir, bin_dir):
        d.mkdir()
    real_bsub = shutil.which("bsub")
    assert real_bsub is not None and Path(real_bsub).parent == lsf.bin_dir
    gate = GATE.format(stop=STOP_AT, state=gate_dir, real=real_bsub, reached=str(reached).lower())
    (bin_dir / "bsub").write_text(gate)
    (bin_dir / "bsub").chmod(0o755)
    spec = tmp_path / "bigsubmit.toml"
    spec.write_text(SPEC.format(marks=marks, work=tmp_path / "work", n=N, array=ARRAY))

    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    submitter = jobfleet_process("submit", str(spec), "--no-runner", env=env)
    stopped = gate_dir / "stopped.pid"
    wait_until(stopped.exists, timeout=120, what="the 6th bsub call")
    submitter.send_signal(signal.SIGKILL)
    submitter.wait(timeout=10)
    wait_until(lambda: stopped.read_text().strip(), timeout=10, what="the gate's pid")
    os.kill(int(stopped.read_text()), signal.SIGKILL)  # the call never reaches the scheduler

    before = _submitted(db)
    in_scheduler_before = len(lsf.jobs())
    resumed = run_jobfleet("submit", str(spec), "--resume", "bigsubmit", "--no-runner", timeout=300)
    watched = run_jobfleet("watch", "bigsubmit", "--interval", "0.5", "--quiet", timeout=240)

    with Store(db) as store:
        rows = store.subjobs(store.get_job("bigsubmit").id)
    fake_ids = Counter(job.id for job in lsf.jobs())
    native = Counter(str(r.native_id) for r in rows)
    runs = marker_lines(marks)
    lost = sum(1 for r in rows if r.status != "completed" or runs.get(r.subjob_id, 0) == 0)
    twice = sum(1 for n in fake_ids.values() if n > 1) + sum(1 for n in runs.values() if n > 1)
    twice += sum(1 for r in rows if r.attempt != 1) + len(set(fake_ids) - set(native))
    recorded = (STOP_AT - 1) * ARRAY
    accepted = recorded + (ARRAY if reached else 0)  # what the scheduler had at the kill
    when = "after the scheduler accepted it" if reached else "before it reached the scheduler"
    reliability.record(
        backend="lsf (fake)",
        cases=N,
        unit="subjobs",
        faults=1,
        lost=lost,
        duplicated=twice,
        detail=(
            f"jobfleet submit SIGKILLed during bsub call {STOP_AT} of {N // ARRAY}, {when}; "
            f"{before['submitted']} recorded before the kill, {in_scheduler_before} in the "
            f"scheduler, {len(fake_ids) - in_scheduler_before} sent by --resume"
        ),
    )
    assert before == {"submitted": recorded, "init": N - recorded}
    assert in_scheduler_before == accepted
    assert resumed.code == 0, resumed.err
    assert f"submitted {N - accepted} subjob(s)" in resumed.err
    if reached:
        assert f"{ARRAY} subjobs had reached lsf before the last submission stopped" in resumed.err
    assert watched.code == 0, watched.err
    assert len(fake_ids) == N and set(fake_ids) == set(native)
    assert runs == dict.fromkeys(range(N), 1)
    assert {(str(r.status), r.attempt, r.exit_code) for r in rows} == {("completed", 1, 0)}


SLURM_GATE = """#!/bin/sh
# The first sbatch call reaches Slurm; its answer never reaches jobfleet.
echo x >> {state}/calls
if [ "$(wc -l < {state}/calls)" -eq 1 ]; then
    {real} "$@" > {state}/lost-answer
    echo $$ > {state}/stopped.pid
    exec sleep 600
fi
exec {real} "$@"
"""
# squeue no longer lists the ended submission (as MinJobAge later): only sacct can tell.
SQUEUE_FORGETS = """#!/bin/sh
case "$*" in *"%F|%k"*) exit 0 ;; esac
exec {real} "$@"
"""


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_killed_slurm_submission_is_found_in_accounting(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Real Slurm: ``jobfleet submit`` is SIGKILLed after ``sbatch`` queued its array but
    before the answer arrived; the array runs and ends, and ``squeue`` no longer lists it
    (as ``MinJobAge`` later). ``submit --resume`` finds it in accounting by its tag and
    sends nothing again; each subjob ran once."""
    n = 6
    marks, gate_dir, bin_dir = tmp_path / "marks", tmp_path / "gate", tmp_path / "gatebin"
    for d in (marks, gate_dir, bin_dir):
        d.mkdir()
    for command, text in (("sbatch", SLURM_GATE), ("squeue", SQUEUE_FORGETS)):
        real = shutil.which(command)
        assert real is not None
        (bin_dir / command).write_text(text.format(state=gate_dir, real=real))
        (bin_dir / command).chmod(0o755)
    name = unique_name("slurmlost")
    spec = write_spec(
        tmp_path / "lost.toml", name, "slurm", n, f"echo once >> {marks}/$1.mark",
        poll=0.5, options="min_poll_interval = 0.5",
    )  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    submitter = jobfleet_process("submit", str(spec), env=env)
    stopped = gate_dir / "stopped.pid"
    wait_until(lambda: stopped.exists() and stopped.read_text().strip(), what="sbatch to answer")
    submitter.send_signal(signal.SIGKILL)
    submitter.wait(timeout=10)
    os.kill(int(stopped.read_text()), signal.SIGKILL)
    array_id = (gate_dir / "lost-answer").read_text().strip().split(";")[0]
    with Store(db) as store:
        before = Counter(str(r.status) for r in store.subjobs(store.get_job(name).id))
    assert before == {"init": n}

    def ended_in_accounting() -> bool:
        # squeue lists a queued or running job in any case: sacct matters once it has ended.
        states = subprocess.run(
            ["sacct", "--noheader", "--parsable2", "-X", "-j", array_id, "--format=State"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        return states == ["COMPLETED"] * n

    wait_until(ended_in_accounting, timeout=120, what=f"array {array_id} to end in accounting")
    resuming = jobfleet_process("submit", str(spec), "--resume", name, env=env)
    resumed_err = resuming.communicate(timeout=120)[1]
    watched = run_jobfleet("watch", name, "--interval", "0.5", "--quiet", timeout=180)

    with Store(db) as store:
        rows = store.subjobs(store.get_job(name).id)
    calls = len((gate_dir / "calls").read_text().splitlines())
    runs = marker_lines(marks)
    reliability.record(
        backend="slurm",
        cases=n,
        unit="subjobs",
        faults=1,
        lost=sum(1 for r in rows if r.status != "completed" or runs.get(r.subjob_id, 0) == 0),
        duplicated=sum(1 for count in runs.values() if count > 1) + (calls - 1),
        detail=(
            "jobfleet submit SIGKILLed after sbatch queued the array, its answer lost; "
            f"squeue hides it, --resume found it in sacct; {calls} sbatch call(s) in all"
        ),
    )
    assert resuming.returncode == 0, resumed_err
    assert f"{n} subjobs had reached slurm before the last submission stopped" in resumed_err
    assert calls == 1  # nothing was sent again
    assert watched.code == 0, watched.err
    assert {r.native_id for r in rows} == {f"{array_id}_{i}" for i in range(n)}
    assert runs == dict.fromkeys(range(n), 1)

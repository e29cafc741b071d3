"""The Grid Engine backend end to end against the fake Grid Engine (tests/fakesched/sge.py).

The same behaviours run against a real cell in test_sge_cell.py when one answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakesched.fixture import FakeHandle, fake_scheduler_fixture
from helpers import args_job, calls_since, wait_until
from jobfleet import Job, monitor_jobs
from jobfleet.backends.sge import GridEngine
from jobfleet.commands import command_calls
from jobfleet.fleet.driver import get_driver
from jobfleet.workdir import EXIT_CODE_FILE

sge = fake_scheduler_fixture("sge", queue_delay=0.05, max_running=8)

FAST = {"min_poll_interval": 0, "exit_code_grace": 30}


def test_fifty_subjobs_split_by_files_one_submit_one_query_per_poll(
    sge: FakeHandle, tmp_path: Path, data_files: object
) -> None:
    files = data_files(100)  # type: ignore[operator]
    job = Job("files")
    job.working_dir = tmp_path / "files"
    job.output_dir = tmp_path / "out"
    job.cmd = ["bash", "-c", "cat __BACKEND_INPUT_FILES__.json > seen.json"]
    job.output_patterns = ["seen.json"]
    job.input_files = [str(f) for f in files]
    job.max_files_per_subjob = 2
    job.backend_args = {"cores": 1, "memory": "100MB", "walltime": 600}
    backend = GridEngine(backend_args=FAST)
    before = command_calls()
    backend.submit(job)
    assert len(job.subjobs) == 50 and calls_since(before, "qsub") == 1
    assert {s.native_id for s in job.subjobs.values()} == {f"1.{t}" for t in range(1, 51)}
    polls = 0
    while not job.ready():
        before = command_calls()
        backend.poll(force=True)
        polls += 1
        assert calls_since(before, "qstat") == 1  # one status query for all 50
        assert calls_since(before, "qacct") <= 1
        assert polls < 1000
    assert job.status_counts() == {"completed": 50}
    for i in job.subjobs:
        seen = json.loads((tmp_path / "out" / str(i) / "seen.json").read_text())
        assert seen == [str(files[2 * i]), str(files[2 * i + 1])]
    tasks = sge.jobs()
    assert len(tasks) == 50 and {t.number for t in tasks} == {1}  # one array job
    assert {t.env["SGE_TASK_ID"] for t in tasks} == {str(i) for i in range(1, 51)}
    assert all(t.cwd == str(job.working_dir) for t in tasks)  # -wd; the script enters each dir


def test_forgotten_jobs_are_settled_by_their_exit_code_files(
    sge: FakeHandle, tmp_path: Path
) -> None:
    sge.configure(forget_finished=True)  # neither qstat nor qacct knows finished jobs
    job = args_job(tmp_path, "forgot", "exit $(( $1 * 3 ))", 3)
    backend = GridEngine(backend_args=FAST)
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.05) == 1
    assert {i: s.exit_code for i, s in job.subjobs.items()} == {0: 0, 1: 3, 2: 6}
    for sub in job.subjobs.values():
        assert (sub.working_dir / EXIT_CODE_FILE).read_text().strip() == str(sub.exit_code)


def test_job_lost_without_exit_code_file_fails_after_the_grace_period(
    sge: FakeHandle, tmp_path: Path
) -> None:
    job = Job("lost")
    job.working_dir = tmp_path / "lost"
    job.cmd = ["sleep", "60"]
    backend = GridEngine(backend_args={"min_poll_interval": 0, "exit_code_grace": 0.5})
    backend.submit(job)
    wait_until(lambda: sge.jobs()[0].state == "running", timeout=20)
    sge.lose(str(job.native_id))
    wait_until(lambda: not sge.jobs(), timeout=20)
    wait_until(lambda: backend.poll(force=True) is not None and job.status.is_final, timeout=20)
    assert job.status == "failed" and (job.reason or "").startswith("lost")


def test_cancel_running_and_queued(sge: FakeHandle, tmp_path: Path) -> None:
    sge.configure(max_running=1)
    job = args_job(tmp_path, "cancel", "sleep 60", 3)
    backend = GridEngine(backend_args=FAST)
    backend.submit(job)
    wait_until(lambda: backend.poll(force=True) is not None and job.subjobs[0].status == "running")
    before = command_calls()
    backend.cancel(job)
    assert calls_since(before, "qdel") == 1
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}
    wait_until(lambda: not sge.queue(), timeout=20)  # the fake really ended all three
    backend.cancel(job)  # nothing left to cancel: no error, no call
    assert calls_since(before, "qdel") == 1


def test_error_state_is_a_failure_with_a_reason(sge: FakeHandle, tmp_path: Path) -> None:
    job = Job("badlog")
    job.working_dir = tmp_path / "badlog"
    job.cmd = ["true"]
    backend = GridEngine(backend_args=FAST)
    script = backend.submission_file(job)
    # as if -wd named a directory that vanished: Grid Engine keeps the job in Eqw
    argv = backend.submit_command(script, tag="x", unit=job)
    argv[argv.index("-wd") + 1] = str(tmp_path / "gone")
    out = sge.run(argv[0], *argv[1:])
    backend.adopt(job, out.stdout.strip())
    wait_until(lambda: backend.poll(force=True) is not None and job.status.is_final, timeout=20)
    assert job.status == "failed" and job.reason == "error state (Eqw)"


def test_transient_failures_are_retried_and_a_submission_is_never_doubled(
    sge: FakeHandle, tmp_path: Path
) -> None:
    # every other call fails; a failing qsub still queues the job (the reply is lost). The
    # jobs outlive the retry's back-off, so the lost submission is still in qstat -j: an
    # array that ended before the retry looked for it would be submitted again.
    sge.configure(fail_rate=0.5, seed=3, fail_after=True, max_consecutive_failures=1)
    jobs = [args_job(tmp_path, f"flaky{k}", "sleep 2", 4) for k in range(3)]
    backend = GridEngine(backend_args=FAST)
    backend.submit(jobs)
    assert monitor_jobs(jobs, heartbeat=0.05) == 0
    assert len(sge.jobs()) == 12  # each array exactly once, found again by its tag
    assert sge.failures().get("qsub", 0) >= 1


def test_global_limit_counts_tasks(sge: FakeHandle, tmp_path: Path) -> None:
    sge.configure(max_running=2)
    job = args_job(tmp_path, "limited", "sleep 0.2", 6)
    backend = GridEngine(backend_args={**FAST, "global_job_limit": 4,
                                       "sleep_between_submission_checks": 0.1})  # fmt: skip
    backend.submit(job)
    assert len({s.native_id.split(".")[0] for s in job.subjobs.values()}) == 2  # type: ignore[union-attr]
    assert monitor_jobs([job], heartbeat=0.05) == 0


def test_through_the_driver(sge: FakeHandle, tmp_path: Path) -> None:
    driver = get_driver("sge", {"poll_interval": 0.1})
    job = args_job(tmp_path, "driven", "exit 0", 2)
    script = driver.render_script(job)  # type: ignore[attr-defined]
    assert "#$ -N driven" in script and "#$ -S /bin/bash" in script


@pytest.mark.parametrize("hold_switch", [True])
def test_held_jobs_stay_submitted(sge: FakeHandle, tmp_path: Path, hold_switch: bool) -> None:
    sge.configure(hold=hold_switch)
    job = args_job(tmp_path, "held", "exit 0", 2)
    backend = GridEngine(backend_args=FAST)
    backend.submit(job)
    for _ in range(5):
        backend.poll(force=True)
    assert job.status_counts() == {"submitted": 2}
    sge.release([s.native_id for s in job.subjobs.values() if s.native_id])
    assert monitor_jobs([job], heartbeat=0.05) == 0

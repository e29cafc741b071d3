"""The LSF backend end to end against the fake LSF (tests/fakesched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakesched.fixture import FakeHandle, fake_scheduler_fixture
from helpers import args_job, calls_since, wait_until
from jobfleet import Job, monitor_jobs
from jobfleet.backends.lsf import LSF
from jobfleet.commands import command_calls
from jobfleet.fleet.driver import get_driver
from jobfleet.workdir import EXIT_CODE_FILE

lsf = fake_scheduler_fixture("lsf", queue_delay=0.05, max_running=4)

FAST = {"min_poll_interval": 0, "exit_code_grace": 30}


def test_fifty_subjobs_split_by_files_one_bsub_one_bjobs_per_poll(
    lsf: FakeHandle, tmp_path: Path, data_files: object
) -> None:
    files = data_files(100)  # type: ignore[operator]
    job = Job("files")
    job.working_dir = tmp_path / "files"
    job.output_dir = tmp_path / "out"
    job.cmd = ["bash", "-c", 'cat __BACKEND_INPUT_FILES__.json > seen.json; echo "$LSB_JOBINDEX"']
    job.output_patterns = ["seen.json"]
    job.input_files = [str(f) for f in files]
    job.max_files_per_subjob = 2
    backend = LSF(backend_args=FAST)
    before = command_calls()
    backend.submit(job)
    assert len(job.subjobs) == 50 and calls_since(before, "bsub") == 1
    assert [s.native_id for s in job.subjobs.values()] == [f"4001[{i + 1}]" for i in range(50)]
    polls = 0
    while not job.ready():
        before = command_calls()
        backend.poll(force=True)
        polls += 1
        assert calls_since(before, "bjobs") == 1  # one status query for all 50, nothing else
        assert polls < 500
    assert job.status_counts() == {"completed": 50}
    for i, sub in job.subjobs.items():
        seen = json.loads((tmp_path / "out" / str(i) / "seen.json").read_text())
        assert seen == [str(files[2 * i]), str(files[2 * i + 1])]
        assert (sub.working_dir / "stdout").read_text() == f"{i + 1}\n"  # LSF counts from 1
    assert {j.number for j in lsf.jobs()} == {4001} and len(lsf.jobs()) == 50
    assert len(list((job.working_dir / "lsf-logs").iterdir())) == 50


def test_single_job_environment_is_clean_unless_inherited(
    lsf: FakeHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBFLEET_TEST_SECRET", "s3")
    jobs = []
    for name, inherit in (("clean", False), ("inherit", True)):
        job = Job(name)
        job.working_dir = tmp_path / name
        job.cmd = ["bash", "-c", 'echo "${JOBFLEET_TEST_SECRET:-none} $LSB_JOBINDEX"']
        job.backend_args = {"inherit_env": inherit}
        jobs.append(job)
    LSF(backend_args=FAST).submit(jobs)
    assert monitor_jobs(jobs, heartbeat=0.05) == 0
    assert (tmp_path / "clean" / "stdout").read_text() == "none 0\n"
    assert (tmp_path / "inherit" / "stdout").read_text() == "s3 0\n"
    assert [j.native_id for j in jobs] == ["4001", "4002"]


def test_cancel_running_and_pending(lsf: FakeHandle, tmp_path: Path) -> None:
    lsf.configure(max_running=2)
    job = args_job(tmp_path, "cancel", "sleep 60", 4)
    backend = LSF(backend_args=FAST)
    backend.submit(job)
    wait_until(lambda: job.update_status() and job.status_counts().get("running") == 2, timeout=20)
    before = command_calls()
    backend.cancel(job)
    assert calls_since(before, "bkill") == 1
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}
    wait_until(lambda: not lsf.queue(), timeout=20)
    ran = [s for s in job.subjobs.values() if (s.working_dir / EXIT_CODE_FILE).exists()]
    assert len(ran) == 2 and {(s.working_dir / EXIT_CODE_FILE).read_text() for s in ran} == {
        "143\n"
    }
    states = lsf.run("bjobs", "-a", "-json", "-o", "jobid jobindex stat exit_reason", "4001")
    records = json.loads(states.stdout)["RECORDS"]
    assert {r["STAT"] for r in records} == {"EXIT"}
    assert {r["EXIT_REASON"] for r in records} == {"TERM_OWNER: job killed by owner"}


def test_cancel_after_the_end_is_no_error(lsf: FakeHandle, tmp_path: Path) -> None:
    job = args_job(tmp_path, "ended", "true", 2)
    backend = LSF(backend_args=FAST)
    backend.submit(job)
    wait_until(lambda: len(lsf.history()) == 2, timeout=20)
    backend.cancel(job)  # bkill: "Job has already finished", exit 255
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}


def test_transient_failures_still_complete_each_subjob_submitted_once(
    lsf: FakeHandle, tmp_path: Path
) -> None:
    lsf.configure(fail_rate=0.3, seed=5)
    jobs = [args_job(tmp_path, f"flaky{k}", "exit 0", 10) for k in range(2)]
    backend = LSF(backend_args=FAST)
    backend.submit(jobs)
    assert monitor_jobs(jobs, heartbeat=0.05) == 0
    assert sorted(j.cwd for j in lsf.jobs()) == sorted([str(j.working_dir) for j in jobs] * 10)
    assert len(lsf.jobs()) == 20 and sum(lsf.failures().values()) > 0


def test_submission_whose_reply_was_lost_is_not_sent_twice(lsf: FakeHandle, tmp_path: Path) -> None:
    lsf.configure(
        fail_rate=1.0, fail_after=True, fail_commands=["bsub"], max_consecutive_failures=1
    )
    job = args_job(tmp_path, "lost-reply", "sleep 3", 3)
    backend = LSF(backend_args=FAST)
    before = command_calls()
    backend.submit(job)
    assert calls_since(before, "bsub") == 1 and len(lsf.jobs()) == 3
    assert [s.native_id for s in job.subjobs.values()] == ["4001[1]", "4001[2]", "4001[3]"]
    backend.cancel(job)


def test_forgotten_jobs_are_resolved_from_their_exit_code_files(
    lsf: FakeHandle, tmp_path: Path
) -> None:
    lsf.configure(forget_finished=True)
    job = args_job(tmp_path, "forgot", "exit $(( $1 == 1 ? 5 : 0 ))", 3)
    backend = LSF(backend_args=FAST)
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.05) == 1
    assert [(s.status.value, s.exit_code) for s in job.subjobs.values()] == [
        ("completed", 0), ("failed", 5), ("completed", 0),
    ]  # fmt: skip
    assert lsf.jobs() == []  # bjobs answered with ERROR records only


def test_held_job_waits_until_released(lsf: FakeHandle, tmp_path: Path) -> None:
    lsf.configure(hold=True)
    job = args_job(tmp_path, "held", "exit 0", 1)
    backend = LSF(backend_args=FAST)
    backend.submit(job)
    lsf.configure(hold=False)
    for _ in range(3):
        backend.poll(force=True)
    assert job.subjobs[0].status == "submitted"  # PSUSP: still waiting
    lsf.release([j.id for j in lsf.jobs()])
    assert monitor_jobs([job], heartbeat=0.05) == 0


def test_driver_is_available_through_the_fake(lsf: FakeHandle) -> None:
    ok, why = type(get_driver("lsf", {})).available()
    assert (ok, why) == (True, "")

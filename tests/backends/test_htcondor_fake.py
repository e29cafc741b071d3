"""The HTCondor backend end to end against the fake HTCondor (tests/fakesched)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fakesched.fixture import FakeHandle, fake_scheduler_fixture
from helpers import args_job, calls_since, check_environment_only_when_inherited, wait_until
from jobfleet import Job, monitor_jobs
from jobfleet.backends.htcondor import HTCondor
from jobfleet.commands import command_calls
from jobfleet.fleet.driver import get_driver
from jobfleet.workdir import EXIT_CODE_FILE

condor = fake_scheduler_fixture("htcondor", queue_delay=0.05, max_running=4)

FAST = {"min_poll_interval": 0, "exit_code_grace": 30}


def test_fifty_subjobs_split_by_files_one_submit_one_query_per_poll(
    condor: FakeHandle, tmp_path: Path, data_files: object
) -> None:
    files = data_files(100)  # type: ignore[operator]
    job = Job("files")
    job.working_dir = tmp_path / "files"
    job.output_dir = tmp_path / "out"
    job.cmd = ["bash", "-c", "cat __BACKEND_INPUT_FILES__.json > seen.json"]
    job.output_patterns = ["seen.json"]
    job.input_files = [str(f) for f in files]
    job.max_files_per_subjob = 2
    backend = HTCondor(backend_args=FAST)
    before = command_calls()
    backend.submit(job)
    assert len(job.subjobs) == 50 and calls_since(before, "condor_submit") == 1
    assert {s.native_id for s in job.subjobs.values()} == {f"1.{p}" for p in range(50)}
    polls = 0
    while not job.ready():
        before = command_calls()
        backend.poll(force=True)
        polls += 1
        assert calls_since(before, "condor_q") == 1  # one status query for all 50
        assert calls_since(before, "condor_history") <= 1
        assert polls < 500
    assert job.status == "completed" and job.status_counts() == {"completed": 50}
    for i in job.subjobs:
        seen = json.loads((tmp_path / "out" / str(i) / "seen.json").read_text())
        assert seen == [str(files[2 * i]), str(files[2 * i + 1])]
    cluster = condor.jobs()
    assert len(cluster) == 50 and {j.number for j in cluster} == {1}  # one cluster
    assert [j.cwd for j in cluster] == [str(job.working_dir / str(i)) for i in range(50)]


def test_cancel_running_and_idle(condor: FakeHandle, tmp_path: Path) -> None:
    condor.configure(max_running=2)
    job = args_job(tmp_path, "cancel", "sleep 60", 4)
    backend = HTCondor(backend_args=FAST)
    backend.submit(job)
    wait_until(lambda: job.update_status() and job.status_counts().get("running") == 2, timeout=20)
    before = command_calls()
    backend.cancel(job)
    assert calls_since(before, "condor_rm") == 1
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}
    wait_until(lambda: not condor.queue(), timeout=20)
    assert all(j.cancelled for j in condor.jobs())
    ran = [s for s in job.subjobs.values() if (s.working_dir / EXIT_CODE_FILE).exists()]
    assert len(ran) == 2  # the two running ones got SIGTERM; the wrapper wrote 143
    assert {(s.working_dir / EXIT_CODE_FILE).read_text().strip() for s in ran} == {"143"}
    backend.cancel(job)  # nothing left to cancel: no command, no error


def test_cancel_of_jobs_that_already_left_the_queue(condor: FakeHandle, tmp_path: Path) -> None:
    job = args_job(tmp_path, "gone", "true", 2)
    backend = HTCondor(backend_args=FAST)
    backend.submit(job)
    wait_until(lambda: not condor.queue() and len(condor.history()) == 2, timeout=20)
    backend.cancel(job)  # condor_rm exits 1 (not found): not an error
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}


def test_held_job_reports_its_reason_and_keeps_waiting(
    condor: FakeHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    condor.configure(hold=True, hold_reason="Input data are being spooled")
    job = args_job(tmp_path, "held", "exit 0", 2)
    backend = HTCondor(backend_args=FAST)
    backend.submit(job)
    condor.configure(hold=False)
    with caplog.at_level(logging.WARNING, logger="jobfleet.backends.htcondor"):
        for _ in range(3):
            backend.poll(force=True)
    held = job.subjobs[0]
    assert held.status == "submitted" and held.reason == "held: Input data are being spooled"
    warnings = [r.getMessage() for r in caplog.records if "held" in r.getMessage()]
    assert len(warnings) == 2 and "Input data are being spooled" in warnings[0]  # once each
    subprocess_release = condor.run("condor_release", "1")
    assert subprocess_release.returncode == 0
    assert monitor_jobs([job], heartbeat=0.05) == 0
    assert held.reason is None and held.exit_code == 0


def test_held_too_long_is_removed_with_its_reason(condor: FakeHandle, tmp_path: Path) -> None:
    condor.configure(hold=True, hold_reason="Policy")
    job = args_job(tmp_path, "stuck", "exit 0", 1)
    backend = HTCondor(backend_args={**FAST, "hold_timeout": 0.3})
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.1) == 1
    assert job.subjobs[0].reason == "held for more than 0.3 s: Policy"
    assert condor.jobs()[0].cancelled  # condor_rm really removed it


def test_held_too_long_can_be_released(condor: FakeHandle, tmp_path: Path) -> None:
    condor.configure(hold=True, hold_reason="Policy")
    job = args_job(tmp_path, "retry", "exit 0", 1)
    backend = HTCondor(backend_args={**FAST, "hold_timeout": 0.2, "hold_action": "release"})
    backend.submit(job)
    condor.configure(hold=False)
    assert monitor_jobs([job], heartbeat=0.1) == 0


def test_transient_failures_still_complete_each_subjob_submitted_once(
    condor: FakeHandle, tmp_path: Path
) -> None:
    condor.configure(fail_rate=0.3, seed=3)
    jobs = [args_job(tmp_path, f"flaky{k}", "exit 0", 10) for k in range(2)]
    backend = HTCondor(backend_args=FAST)
    backend.submit(jobs)
    assert monitor_jobs(jobs, heartbeat=0.05) == 0
    assert len(condor.jobs()) == 20
    assert sorted(j.cwd for j in condor.jobs()) == sorted(
        str(s.working_dir) for job in jobs for s in job.subjobs.values()
    )
    assert sum(condor.failures().values()) > 0  # the retries were needed


def test_submission_whose_reply_was_lost_is_not_sent_twice(
    condor: FakeHandle, tmp_path: Path
) -> None:
    condor.configure(
        fail_rate=1.0, fail_after=True, fail_commands=["condor_submit"], max_consecutive_failures=1
    )
    job = args_job(tmp_path, "lost-reply", "sleep 3", 3)
    backend = HTCondor(backend_args=FAST)
    before = command_calls()
    backend.submit(job)  # the cluster was queued, but condor_submit said it failed
    assert calls_since(before, "condor_submit") == 1  # the tag was found: no second submit
    assert len(condor.jobs()) == 3
    assert [s.native_id for s in job.subjobs.values()] == ["1.0", "1.1", "1.2"]
    backend.cancel(job)


def test_forgotten_jobs_are_resolved_from_their_exit_code_files(
    condor: FakeHandle, tmp_path: Path
) -> None:
    condor.configure(forget_finished=True)
    job = args_job(tmp_path, "forgot", "exit $(( $1 == 1 ? 5 : 0 ))", 3)
    backend = HTCondor(backend_args=FAST)
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.05) == 1
    assert [(s.status.value, s.exit_code) for s in job.subjobs.values()] == [
        ("completed", 0), ("failed", 5), ("completed", 0),
    ]  # fmt: skip
    assert condor.jobs() == []  # neither queue nor history knew them


def test_lost_job_fails_after_the_grace_period(condor: FakeHandle, tmp_path: Path) -> None:
    condor.configure(lose=1)
    job = args_job(tmp_path, "lost", "sleep 0.5", 1)
    backend = HTCondor(backend_args={"min_poll_interval": 0, "exit_code_grace": 0.5})
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.1) == 1
    reason = job.subjobs[0].reason
    assert reason is not None and reason.startswith("lost: no exit code file")


def test_history_decides_when_there_is_no_exit_code_file(
    condor: FakeHandle, tmp_path: Path
) -> None:
    # Jobs submitted by hand (no jobfleet wrapper): only condor_history knows how they ended.
    (tmp_path / "sub").write_text(
        f"executable = /bin/sh\narguments = \"-c 'exit $(code)'\"\ninitialdir = {tmp_path}\n"
        "queue code from (\n0\n7\n)\n"
    )
    assert condor.run("condor_submit", "-terse", str(tmp_path / "sub")).stdout == "1.0 - 1.1\n"
    backend = HTCondor(backend_args=FAST)
    units = []
    for proc in (0, 1):
        unit = Job(f"adopted{proc}")
        unit.working_dir = tmp_path
        backend.adopt(unit, f"1.{proc}")
        units.append(unit)
    wait_until(lambda: len(condor.history()) == 2, timeout=20)
    before = command_calls()
    backend.poll(force=True)
    assert calls_since(before, "condor_history") == 1
    assert [(u.status.value, u.exit_code, u.reason) for u in units] == [
        ("completed", 0, None), ("failed", 7, "exit code 7"),
    ]  # fmt: skip


def test_driver_is_available_through_the_fake(condor: FakeHandle) -> None:
    ok, why = type(get_driver("htcondor", {})).available()
    assert (ok, why) == (True, "")


def test_submitting_environment_only_when_inherited(
    condor: FakeHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_environment_only_when_inherited(
        HTCondor(backend_args={"min_poll_interval": 0}), tmp_path, monkeypatch, 0.1
    )

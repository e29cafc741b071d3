"""The PBS backend end to end against the fake PBS (tests/fakesched/pbs.py), both flavours.

No OpenPBS or Torque server can be installed here (no Debian package), so the fake is
the only PBS these tests meet; its output formats are checked against recorded real
output in test_pbs_parsers.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakesched.fixture import FakeHandle, fake_scheduler_fixture
from helpers import args_job, calls_since, check_environment_only_when_inherited, wait_until
from jobfleet import Job, monitor_jobs
from jobfleet.backends.pbs import PBS
from jobfleet.commands import command_calls
from jobfleet.workdir import EXIT_CODE_FILE

fake_pbs = fake_scheduler_fixture("pbs", queue_delay=0.05, max_running=8)

FAST = {"min_poll_interval": 0, "exit_code_grace": 30}


@pytest.fixture(params=["openpbs", "torque"])
def pbs(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fake_pbs: FakeHandle
) -> Iterator[tuple[FakeHandle, str]]:
    monkeypatch.setenv("FAKESCHED_PBS_FLAVOUR", request.param)
    yield fake_pbs, request.param


def test_flavour_is_detected_from_qstat_version(pbs: tuple[FakeHandle, str]) -> None:
    _, flavour = pbs
    assert PBS().flavour() == flavour


def test_fifty_subjobs_split_by_files_one_submit_one_query_per_poll(
    pbs: tuple[FakeHandle, str], tmp_path: Path, data_files: object
) -> None:
    fake, flavour = pbs
    files = data_files(100)  # type: ignore[operator]
    job = Job("files")
    job.working_dir = tmp_path / "files"
    job.output_dir = tmp_path / "out"
    job.cmd = ["bash", "-c", "cat __BACKEND_INPUT_FILES__.json > seen.json"]
    job.output_patterns = ["seen.json"]
    job.input_files = [str(f) for f in files]
    job.max_files_per_subjob = 2
    job.backend_args = {"cores": 1, "memory": "100MB", "walltime": 600}
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    before = command_calls()
    backend.submit(job)
    assert len(job.subjobs) == 50 and calls_since(before, "qsub") == 1
    server = fake.jobs()[0].id.split(".", 1)[1]
    assert {s.native_id for s in job.subjobs.values()} == {f"1[{i}].{server}" for i in range(50)}
    polls = 0
    while not job.ready():
        before = command_calls()
        backend.poll(force=True)
        polls += 1
        assert calls_since(before, "qstat") == 1  # one status query for all 50, finished ones too
        assert polls < 1000
    assert job.status_counts() == {"completed": 50}
    for i in job.subjobs:
        seen = json.loads((tmp_path / "out" / str(i) / "seen.json").read_text())
        assert seen == [str(files[2 * i]), str(files[2 * i + 1])]
    index_var = "PBS_ARRAY_INDEX" if flavour == "openpbs" else "PBS_ARRAYID"
    assert sorted(int(t.env[index_var]) for t in fake.jobs()) == list(range(50))


def test_single_job_runs_in_its_working_directory(
    pbs: tuple[FakeHandle, str], tmp_path: Path
) -> None:
    fake, flavour = pbs
    job = Job("single")
    job.working_dir = tmp_path / "single"
    job.cmd = ["bash", "-c", "pwd > where.txt; echo hi; exit 4"]
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.05) == 1
    assert (job.status, job.exit_code) == ("failed", 4)
    assert fake.jobs()[0].cwd != str(job.working_dir)  # PBS starts jobs elsewhere ($HOME)
    assert (job.working_dir / "where.txt").read_text().strip() == str(job.working_dir)
    assert (job.working_dir / "stdout").read_text() == "hi\n"


def test_forgotten_jobs_are_settled_by_their_exit_code_files(
    pbs: tuple[FakeHandle, str], tmp_path: Path
) -> None:
    fake, flavour = pbs
    fake.configure(forget_finished=True)  # finished jobs vanish: "Unknown Job Id"
    job = args_job(tmp_path, "forgot", "exit $(( $1 * 3 ))", 3)
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.05) == 1
    assert {i: s.exit_code for i, s in job.subjobs.items()} == {0: 0, 1: 3, 2: 6}
    for sub in job.subjobs.values():
        assert (sub.working_dir / EXIT_CODE_FILE).read_text().strip() == str(sub.exit_code)


def test_cancel_running_and_queued(pbs: tuple[FakeHandle, str], tmp_path: Path) -> None:
    fake, flavour = pbs
    fake.configure(max_running=1)
    job = args_job(tmp_path, "cancel", "sleep 60", 3)
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    backend.submit(job)
    wait_until(lambda: backend.poll(force=True) is not None and job.subjobs[0].status == "running")
    before = command_calls()
    backend.cancel(job)
    assert calls_since(before, "qdel") == 1
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}
    wait_until(lambda: not fake.queue(), timeout=20)


def test_cancel_of_units_that_just_finished_is_no_error(
    pbs: tuple[FakeHandle, str], tmp_path: Path
) -> None:
    fake, flavour = pbs
    job = args_job(tmp_path, "late", "exit 0", 2)
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    backend.submit(job)
    wait_until(lambda: not fake.queue(), timeout=20)  # finished, but not polled yet
    backend.cancel(job)  # qdel complains ("Job has finished" / invalid state) and exits 35
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}


def test_gaps_make_several_arrays_for_openpbs_one_for_torque(
    pbs: tuple[FakeHandle, str], tmp_path: Path
) -> None:
    fake, flavour = pbs
    job = args_job(tmp_path, "subset", "exit $1", 6)
    job.split()
    subset = [job.subjobs[i] for i in (0, 1, 3, 5)]
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    before = command_calls()
    backend.submit(subset)
    # OpenPBS -J takes one range with two indices at least: 0-1 as an array, 3 and 5 alone
    assert calls_since(before, "qsub") == (3 if flavour == "openpbs" else 1)
    monitor_jobs(subset, heartbeat=0.05)
    assert [s.exit_code for s in subset] == [0, 1, 3, 5]
    assert len(fake.jobs()) == 4


def test_transient_failures_are_retried(pbs: tuple[FakeHandle, str], tmp_path: Path) -> None:
    fake, flavour = pbs
    fake.configure(fail_rate=0.9, seed=5, fail_commands=["qstat"], max_consecutive_failures=1)
    job = args_job(tmp_path, "flaky", "sleep 0.5", 5)  # several polls
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.05) == 0
    assert fake.failures().get("qstat", 0) >= 1


def test_held_jobs_stay_submitted(pbs: tuple[FakeHandle, str], tmp_path: Path) -> None:
    fake, flavour = pbs
    fake.configure(hold=True)
    job = args_job(tmp_path, "held", "exit 0", 2)
    backend = PBS(backend_args={**FAST, "flavour": flavour})
    backend.submit(job)
    for _ in range(5):
        backend.poll(force=True)
    assert job.status_counts() == {"submitted": 2}
    fake.release([s.native_id for s in job.subjobs.values() if s.native_id])
    assert monitor_jobs([job], heartbeat=0.05) == 0


def test_driver_is_available_with_a_pbs_qstat(pbs: tuple[FakeHandle, str]) -> None:
    from jobfleet.fleet.pbs import PBSDriver

    assert PBSDriver.available() == (True, "")


def test_submitting_environment_only_when_inherited(
    pbs: tuple[FakeHandle, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_environment_only_when_inherited(PBS(backend_args=FAST), tmp_path, monkeypatch, 0.1)

"""Orchestration over the store: leases, batched polls, retries, submit/cancel/resubmit/remove."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from jobfleet.errors import DuplicateJobError, JobNotFoundError
from jobfleet.fleet import Fleet, JobActiveError, RetryPolicy, UnknownBackendError
from jobfleet.fleet import orchestrator as orchestrator_module
from jobfleet.fleet.api import fleet_for, submit_job, watch_step
from jobfleet.fleet.control import cancel, remove, resubmit
from jobfleet.fleet.driver import BackendOptionsError, driver_availability, driver_names
from jobfleet.fleet.progress import job_status
from jobfleet.store import StatusUpdate
from jobfleet.workdir import EXIT_CODE_FILE

from .conftest import run_until_ended
from .fakedriver import NAME, FakeDriver


@pytest.fixture(autouse=True)
def _fresh_fake() -> Iterator[None]:
    FakeDriver.reset()
    yield
    FakeDriver.reset()


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Background runners that would have been started (none is)."""
    calls: list[tuple[str, list[str]]] = []

    def fake_spawn(db_path, refs, log_file):  # type: ignore[no-untyped-def]
        calls.append((str(db_path), list(refs)))
        return 4242

    monkeypatch.setattr(orchestrator_module, "spawn_runner", fake_spawn)
    return calls


def _fail(job, sub):  # type: ignore[no-untyped-def]
    return StatusUpdate(sub.job_id, sub.subjob_id, "failed", exit_code=1, reason="exit code 1")


def test_submit_records_after_each_scheduler_call(store, make_job):
    job = make_job("batches", "true", n=5)
    record = Fleet(store).submit_job(job, NAME, {"batch": 2})
    assert FakeDriver.submits == [[0, 1], [2, 3], [4]]
    assert {s.native_id for s in store.subjobs(record.id)} == {f"fake.{i}" for i in range(5)}
    assert store.get_job(record.id).description == job.job_dict


def test_failed_submission_keeps_what_was_recorded_and_resume_finishes(store, make_job):
    job = make_job("half", "true", n=5)
    FakeDriver.fail_after_batches = 1
    fleet = Fleet(store)
    with pytest.raises(Exception, match="refused"):
        fleet.submit_job(job, NAME, {"batch": 2})
    assert [s.status for s in store.subjobs(store.get_job("half").id)] == [
        "submitted", "submitted", "init", "init", "init",
    ]  # fmt: skip
    FakeDriver.fail_after_batches = None
    assert fleet.resume_job("half") == 3
    assert FakeDriver.submits[-2:] == [[2, 3], [4]]
    assert all(s.attempt == 1 for s in store.subjobs(store.get_job("half").id))


def test_submit_rejects_unknown_backend_bad_options_and_duplicates(
    store, make_job, unimplemented_backend
):
    fleet = Fleet(store)
    with pytest.raises(UnknownBackendError, match="unknown backend 'nope'"):
        fleet.submit_job(make_job("a", "true"), "nope")
    with pytest.raises(UnknownBackendError, match="not implemented yet"):
        fleet.submit_job(make_job("b", "true"), unimplemented_backend)
    with pytest.raises(BackendOptionsError, match="max_processes"):
        fleet.submit_job(make_job("c", "true"), "local", {"max_processes": 0})
    assert store.list_jobs() == []  # nothing stored for a rejected job
    fleet.submit_job(make_job("d", "true"), NAME)
    with pytest.raises(DuplicateJobError):
        fleet.submit_job(make_job("d", "true"), NAME)


def test_only_the_lease_holder_polls_once_for_all_jobs(store, make_job):
    FakeDriver.outcome = lambda job, sub: None  # nothing ever changes
    a, b = Fleet(store, owner="A"), Fleet(store, owner="B")
    one = a.submit_job(make_job("one", "true", n=2), NAME)
    two = b.submit_job(make_job("two", "true", n=1), NAME)
    a.watch_step([one.id])
    b.watch_step([two.id])
    b.watch_step([two.id])
    a.watch_step([one.id])
    # Two polls, both by A, each covering the units of both jobs.
    assert FakeDriver.polls == [[(one.id, 0), (one.id, 1), (two.id, 0)]] * 2
    assert a.holds(NAME) and not b.holds(NAME)
    a.stop_watching()
    b.watch_step([two.id])
    assert b.holds(NAME) and len(FakeDriver.polls) == 3


def test_non_holders_see_what_the_holder_wrote(store, make_job):
    a, b = Fleet(store, owner="A"), Fleet(store, owner="B")
    record = a.submit_job(make_job("seen", "true", n=3), NAME)
    a.watch_step([record.id])
    progress = b.watch_step([record.id])[record.id]
    assert FakeDriver.polls == [[(record.id, i) for i in range(3)]]
    assert progress.counts == {"completed": 3} and progress.ended and progress.completed


def test_retries_keep_attempt_history(store, make_job):
    # Subjob 1 fails on its first attempt only.
    FakeDriver.outcome = lambda job, sub: (
        _fail(job, sub)
        if sub.subjob_id == 1 and sub.attempt == 1
        else StatusUpdate(sub.job_id, sub.subjob_id, "completed", exit_code=0)
    )
    fleet = Fleet(store)
    record = fleet.submit_job(
        make_job("retry", "true", n=3), NAME, policy=RetryPolicy(max_retries=2)
    )
    state = run_until_ended(fleet, [record.id])
    assert state[record.id].counts == {"completed": 3}
    history = store.attempts(record.id, 1)
    assert [(h.attempt, h.status, h.reason) for h in history] == [
        (1, "failed", "exit code 1"),
        (2, "completed", None),
    ]


def test_retries_stop_at_max_retries(store, make_job):
    FakeDriver.outcome = _fail
    fleet = Fleet(store)
    record = fleet.submit_job(make_job("hopeless", "true"), NAME, policy=RetryPolicy(max_retries=2))
    state = run_until_ended(fleet, [record.id])
    assert state[record.id].counts == {"failed": 1}
    assert [h.attempt for h in store.attempts(record.id, 0)] == [1, 2, 3]


def test_retries_stop_past_max_failed_fraction(store, make_job, caplog):
    # 3 of 4 fail at once: 75% > 50%, so nothing is retried even though retries remain.
    FakeDriver.outcome = lambda job, sub: (
        _fail(job, sub)
        if sub.subjob_id < 3
        else StatusUpdate(sub.job_id, sub.subjob_id, "completed", exit_code=0)
    )
    fleet = Fleet(store)
    policy = RetryPolicy(max_retries=3, max_failed_fraction=0.5)
    record = fleet.submit_job(make_job("many", "true", n=4), NAME, policy=policy)
    with caplog.at_level(logging.WARNING, logger="jobfleet.fleet"):
        state = run_until_ended(fleet, [record.id])
    assert state[record.id].counts == {"failed": 3, "completed": 1}
    assert state[record.id].retries_stopped
    assert all(s.attempt == 1 for s in store.subjobs(record.id))
    assert "retries stopped" in caplog.text


def test_within_max_failed_fraction_retries_go_on(store, make_job):
    FakeDriver.outcome = lambda job, sub: (
        _fail(job, sub)
        if sub.subjob_id == 0 and sub.attempt == 1
        else StatusUpdate(sub.job_id, sub.subjob_id, "completed", exit_code=0)
    )
    fleet = Fleet(store)
    policy = RetryPolicy(max_retries=1, max_failed_fraction=0.25)
    record = fleet.submit_job(make_job("few", "true", n=4), NAME, policy=policy)
    assert run_until_ended(fleet, [record.id])[record.id].counts == {"completed": 4}
    assert store.subjobs(record.id)[0].attempt == 2


def test_retry_owed_after_a_crash_between_reset_and_submit(store, make_job):
    fleet = Fleet(store)
    record = fleet.submit_job(make_job("owed", "true"), NAME, policy=RetryPolicy(max_retries=1))
    store.update_statuses([StatusUpdate(record.id, 0, "failed", reason="exit code 1")])
    store.reset_for_retry(record.id, [0])  # ... and the holder died here
    assert not fleet.progress(record).ended
    assert run_until_ended(fleet, [record.id])[record.id].counts == {"completed": 1}
    assert store.subjobs(record.id)[0].attempt == 2


def test_cancel_marks_the_store_before_the_driver_acts(store, make_job):
    FakeDriver.outcome = lambda job, sub: None
    fleet = Fleet(store)
    FakeDriver.store_view = lambda job_id: [s.status for s in store.subjobs(job_id)]
    record = fleet.submit_job(make_job("stop", "true", n=3), NAME)
    assert cancel(fleet, record.id, [0, 2]) == 2
    assert FakeDriver.cancels == [([0, 2], ["failed", "submitted", "failed"])]
    subs = store.subjobs(record.id)
    assert [(s.status, s.reason) for s in subs] == [
        ("failed", "cancelled"), ("submitted", None), ("failed", "cancelled"),
    ]  # fmt: skip
    # Whatever the scheduler says afterwards, "cancelled" stays.
    store.update_statuses([StatusUpdate(record.id, 0, "completed", exit_code=0)])
    assert store.subjobs(record.id)[0].reason == "cancelled"
    assert cancel(fleet, record.id, [0]) == 0


def test_cancel_leaves_a_unit_that_ended_before_it_to_the_next_poll(store, make_job):
    FakeDriver.outcome = lambda job, sub: None  # the scheduler has not reported anything yet
    fleet = Fleet(store)
    job = make_job("raced", "true", n=3)
    record = fleet.submit_job(job, NAME)
    # Unit 1's command has ended (its wrapper wrote the exit code), unrecorded so far.
    finished = job.subjobs[1].working_dir
    finished.mkdir(parents=True)
    (finished / EXIT_CODE_FILE).write_text("0\n")
    assert cancel(fleet, record.id) == 2
    assert [ids for ids, _ in FakeDriver.cancels] == [[0, 2]]
    assert [s.status for s in store.subjobs(record.id)] == ["failed", "submitted", "failed"]
    FakeDriver.outcome = None  # the scheduler now says it completed
    assert run_until_ended(fleet, [record.id])[record.id].counts == {"completed": 1, "failed": 2}
    assert store.subjobs(record.id, ids=[1])[0].reason is None


def test_cancelled_units_are_not_retried(store, make_job):
    FakeDriver.outcome = lambda job, sub: None
    fleet = Fleet(store)
    record = fleet.submit_job(make_job("nore", "true"), NAME, policy=RetryPolicy(max_retries=3))
    cancel(fleet, record.id)
    assert run_until_ended(fleet, [record.id])[record.id].counts == {"failed": 1}
    assert store.subjobs(record.id)[0].attempt == 1


def test_resubmit_failed_or_named_units(store, make_job):
    FakeDriver.outcome = lambda job, sub: _fail(job, sub) if sub.subjob_id == 1 else None
    fleet = Fleet(store)
    record = fleet.submit_job(make_job("re", "true", n=3), NAME)
    fleet.watch_step([record.id])
    with pytest.raises(JobActiveError, match="still queued or running"):
        resubmit(fleet, record.id, subjob_ids=[0, 1])
    assert resubmit(fleet, record.id, failed_only=True) == 1
    assert store.subjobs(record.id, ids=[1])[0].attempt == 2
    assert resubmit(fleet, record.id) == 0  # nothing failed any more


def test_remove_refuses_active_jobs_unless_forced(store, make_job):
    FakeDriver.outcome = lambda job, sub: None
    fleet = Fleet(store)
    record = fleet.submit_job(make_job("rm", "true", n=2), NAME)
    with pytest.raises(JobActiveError, match="cancel it first or use --force"):
        remove(fleet, record.id)
    remove(fleet, record.id, force=True)
    assert FakeDriver.cancels and FakeDriver.cancels[0][0] == [0, 1]
    with pytest.raises(JobNotFoundError):
        store.get_job(record.id)


def test_ensure_runner_only_without_live_holder(store, make_job, spawned):
    fleet = Fleet(store)
    record = fleet.submit_job(make_job("bg", "true"), "local")
    assert fleet.ensure_runner(record) == 4242
    assert spawned == [(str(store.path), [str(record.id)])]
    Fleet(store, owner="holder").watch_step([record.id])
    assert fleet.ensure_runner(record) is None
    other = fleet.submit_job(make_job("remote", "true"), NAME)
    assert fleet.ensure_runner(other) is None  # a scheduler needs no runner
    assert len(spawned) == 1


def test_holder_hands_over_other_jobs_when_it_stops(store, make_job, spawned):
    fleet = Fleet(store, owner="runner")
    mine = fleet.submit_job(make_job("mine", "true"), "local")
    theirs = fleet.submit_job(make_job("theirs", "sleep 30"), "local")
    run_until_ended(fleet, [mine.id])
    assert fleet.stop_watching() == [4242]
    assert spawned == [(str(store.path), [str(theirs.id)])]
    cancel(fleet, theirs.id)


def test_module_level_api_keeps_one_owner_per_store(store, make_job):
    record = submit_job(store, make_job("api", "true", n=2), NAME, max_retries=1)
    assert record.max_retries == 1
    watch_step(store, [record.id])
    watch_step(store, [record.id])  # renews its own lease instead of waiting for it
    assert len(FakeDriver.polls) == 1  # second step: nothing active any more
    assert fleet_for(store) is fleet_for(store)


def test_job_status_is_the_lowest_present():
    assert job_status({"completed": 3, "failed": 1}) == "failed"
    assert job_status({"running": 1, "completed": 2}) == "running"
    assert job_status({}) == "init"


def test_backend_listing_and_availability(unimplemented_backend):
    names = driver_names()
    assert names[:7] == ["local", "slurm", "htcondor", "lsf", "pbs", "sge", "dirac"]
    assert NAME in names
    assert driver_availability("local") == (True, "")
    assert driver_availability(unimplemented_backend) == (False, "not implemented yet")
    assert unimplemented_backend in driver_names()

"""Subjob records: submission, the status order, retries, and a property of polls."""

from __future__ import annotations

import enum
import itertools
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobfleet.errors import JobNotFoundError, StoreError
from jobfleet.store import (
    FINAL_STATUSES,
    STATUS_ORDER,
    StatusUpdate,
    Store,
    SubjobRecord,
)

from .conftest import add

# -- submission, status rules, retries ------------------------------------------


def test_record_submitted(store: Store, db: Path) -> None:
    job = add(store, n=3)
    t0 = time.time()
    store.record_submitted(job.id, [(0, "pid-1"), (2, "pid-3")])
    t1 = time.time()
    s0, s1, s2 = store.subjobs(job.id)
    assert (s0.status, s0.native_id, s0.attempt) == ("submitted", "pid-1", 1)
    assert s0.submitted_at is not None and t0 <= s0.submitted_at <= t1
    assert (s1.status, s1.attempt, s1.native_id) == ("init", 0, None)
    assert s2.native_id == "pid-3"
    assert store.attempts(job.id, 0) == [s0]

    with pytest.raises(StoreError, match=r"no subjob.*\[7\]") as err:
        store.record_submitted(job.id, [(1, "ok"), (7, "nope")])
    assert str(db) in str(err.value)
    assert store.subjobs(job.id, ids=[1])[0].status == "init"  # the batch rolled back
    with pytest.raises(JobNotFoundError):
        store.record_submitted(999, [(0, "x")])
    with pytest.raises(ValueError, match="twice"):
        store.record_submitted(job.id, [(1, "a"), (1, "b")])
    with pytest.raises(StoreError, match="no subjob"):
        store.attempts(job.id, 42)
    with pytest.raises(JobNotFoundError):
        store.attempts(999, 0)


def test_record_submitted_with_one_native_id_for_all(store: Store, db: Path) -> None:
    """The local driver's batches (every native id "local") take the one-statement path."""
    job = add(store, n=4)
    store.record_submitted(job.id, [(0, "local"), (3, "local")])
    records = store.subjobs(job.id)
    assert [(r.status, r.native_id, r.attempt) for r in records] == [
        ("submitted", "local", 1),
        ("init", None, 0),
        ("init", None, 0),
        ("submitted", "local", 1),
    ]
    assert [a.status for a in store.attempts(job.id, 3)] == ["submitted"]
    with pytest.raises(StoreError, match=r"no subjob.*\[9\]"):
        store.record_submitted(job.id, [(1, "local"), (9, "local")])
    assert store.subjob_ids(job.id, statuses=["init"]) == [1, 2]  # the batch rolled back
    assert store.subjob_ids(job.id, ids=[3, 2]) == [2, 3]
    assert store.subjob_ids(job.id) == [r.subjob_id for r in store.subjobs(job.id)]
    with pytest.raises(JobNotFoundError):
        store.subjob_ids(999)


def test_status_rules_forward_only_final_sticky_timestamps(store: Store) -> None:
    job = add(store, n=3)
    j = job.id
    store.record_submitted(j, [(0, "a"), (1, "b")])

    t0 = time.time()
    assert store.update_statuses([StatusUpdate(j, 0, "running")]) == 1
    running = store.subjobs(j, ids=[0])[0]
    assert running.started_at is not None and running.started_at >= t0
    assert running.finished_at is None
    # Backwards and same-status reports change nothing, not even started_at.
    assert store.update_statuses([StatusUpdate(j, 0, "submitted")]) == 0
    assert store.update_statuses([StatusUpdate(j, 0, "running")]) == 0
    assert store.update_statuses([StatusUpdate(j, 0, "init")]) == 0
    assert store.subjobs(j, ids=[0])[0] == running

    assert store.update_statuses([StatusUpdate(j, 0, "completed", exit_code=0)]) == 1
    done = store.subjobs(j, ids=[0])[0]
    assert (done.status, done.exit_code, done.started_at) == ("completed", 0, running.started_at)
    assert done.finished_at is not None and running.started_at is not None
    assert done.finished_at >= running.started_at
    # Final is sticky, even against the other final status.
    stale = [
        StatusUpdate(j, 0, "failed", exit_code=1, reason="late"),
        StatusUpdate(j, 0, "running"),
    ]
    assert store.update_statuses(stale) == 0
    assert store.subjobs(j, ids=[0])[0] == done

    # Straight to final without being seen running: no started_at.
    assert store.update_statuses([StatusUpdate(j, 1, "failed", 137, "OOM killed")]) == 1
    failed = store.subjobs(j, ids=[1])[0]
    assert (failed.status, failed.exit_code, failed.reason) == ("failed", 137, "OOM killed")
    assert failed.started_at is None and failed.finished_at is not None

    # Unknown jobs/subjobs are ignored, mixed batches count only real changes.
    batch = [
        StatusUpdate(999, 0, "running"),
        StatusUpdate(j, 99, "running"),
        StatusUpdate(j, 2, "submitted"),
        StatusUpdate(j, 1, "completed"),
    ]
    assert store.update_statuses(batch) == 1
    assert store.update_statuses([]) == 0
    assert store.counts(j) == {"completed": 1, "failed": 1, "submitted": 1}


def test_update_statuses_bad_status_rolls_back_whole_batch(store: Store, db: Path) -> None:
    job = add(store, n=2)
    store.record_submitted(job.id, [(0, "a"), (1, "b")])
    batch = [StatusUpdate(job.id, 0, "running"), StatusUpdate(job.id, 1, "exploded")]
    with pytest.raises(ValueError, match="exploded") as err:
        store.update_statuses(batch)
    assert str(db) in str(err.value)
    assert store.counts(job.id) == {"submitted": 2}


def test_status_enums_are_accepted(store: Store) -> None:
    class Status(str, enum.Enum):  # noqa: UP042 - the shape of jobfleet.status.JobStatus
        running = "running"

    job = add(store, n=1)
    store.record_submitted(job.id, [(0, "a")])
    assert store.update_statuses([StatusUpdate(job.id, 0, Status.running)]) == 1
    assert store.counts(job.id) == {"running": 1}
    assert [r.subjob_id for r in store.subjobs(job.id, statuses=[Status.running])] == [0]


def test_retry_keeps_attempt_history(store: Store) -> None:
    job = add(store, n=2, max_retries=1)
    j = job.id
    store.record_submitted(j, [(0, "first")])
    store.update_statuses([StatusUpdate(j, 0, "running")])
    store.update_statuses([StatusUpdate(j, 0, "failed", exit_code=2, reason="segfault")])

    store.reset_for_retry(j, [0])
    reset = store.subjobs(j, ids=[0])[0]
    assert reset == SubjobRecord(j, 0, "init", None, None, None, 1, None, None, None)
    [first] = store.attempts(j, 0)
    assert (first.attempt, first.status, first.native_id) == (1, "failed", "first")
    assert (first.exit_code, first.reason) == (2, "segfault")
    assert first.started_at is not None and first.finished_at is not None

    store.record_submitted(j, [(0, "second")])
    again = store.subjobs(j, ids=[0])[0]
    assert (again.status, again.attempt, again.native_id, again.exit_code) == (
        "submitted",
        2,
        "second",
        None,
    )
    store.update_statuses([StatusUpdate(j, 0, "completed", exit_code=0)])
    history = store.attempts(j, 0)
    assert [(a.attempt, a.status, a.native_id, a.exit_code) for a in history] == [
        (1, "failed", "first", 2),
        (2, "completed", "second", 0),
    ]
    assert history[-1] == store.subjobs(j, ids=[0])[0]  # history mirrors the current attempt

    # Resubmitting without a reset also opens a new attempt.
    store.record_submitted(j, [(0, "third")])
    assert [a.attempt for a in store.attempts(j, 0)] == [1, 2, 3]

    with pytest.raises(StoreError, match=r"no subjob.*\[5\]"):
        store.reset_for_retry(j, [1, 5])
    assert store.subjobs(j, ids=[1])[0].attempt == 0
    with pytest.raises(JobNotFoundError):
        store.reset_for_retry(999, [0])


# -- property: polls never move a subjob backwards or off a final status ------------

_names = itertools.count()


@settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 2), st.sampled_from(STATUS_ORDER)), max_size=6),
        max_size=8,
    )
)
def test_property_polls_follow_the_status_order(
    store: Store, batches: list[list[tuple[int, str]]]
) -> None:
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    job = add(store, f"prop{next(_names)}", n=3)
    store.record_submitted(job.id, [(0, "a"), (1, "b")])  # subjob 2 stays in init
    model = {0: "submitted", 1: "submitted", 2: "init"}
    seen_running: set[int] = set()
    before = {r.subjob_id: r for r in store.subjobs(job.id)}
    for batch in batches:
        expected = 0
        for sid, status in batch:  # rows apply in order within a batch
            if model[sid] not in FINAL_STATUSES and rank[status] > rank[model[sid]]:
                model[sid] = status
                seen_running |= {sid} if status == "running" else set()
                expected += 1
        got = store.update_statuses(StatusUpdate(job.id, sid, st_) for sid, st_ in batch)
        assert got == expected
        after = {r.subjob_id: r for r in store.subjobs(job.id)}
        for sid, rec in after.items():
            assert rec.status == model[sid]
            assert rank[rec.status] >= rank[before[sid].status]
            if before[sid].status in FINAL_STATUSES:
                assert rec == before[sid]  # final rows never change at all
            assert (rec.finished_at is not None) == (rec.status in FINAL_STATUSES)
            assert (rec.started_at is not None) == (sid in seen_running)
            if rec.attempt:
                assert store.attempts(job.id, sid)[-1] == rec
        before = after

"""Jobs in the store: adding, naming, finding, listing, deleting, filtering their subjobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jobfleet.errors import DuplicateJobError, JobfleetError, JobNotFoundError, StoreError
from jobfleet.store import (
    WHOLE_JOB,
    StatusUpdate,
    Store,
    SubjobRecord,
)

from .conftest import add, raw

# -- jobs -----------------------------------------------------------------------


def test_job_round_trip(store: Store) -> None:
    t0 = time.time()
    job = store.add_job(
        "calib",
        description={"cmd": ["basf2", "x.py"], "args": [[1, 2], [3, 4]], "env": {"A": "1"}},
        backend="slurm",
        backend_options={"partition": "short", "mem": 4},
        subjob_ids=range(3),
        max_retries=2,
    )
    assert job.name == "calib" and job.backend == "slurm" and job.max_retries == 2
    assert job.backend_options == {"partition": "short", "mem": 4}
    assert job.description["args"] == [[1, 2], [3, 4]]
    assert t0 <= job.created_at <= time.time()
    assert store.get_job(job.id) == job
    assert store.get_job(str(job.id)) == job
    assert store.get_job("calib") == job
    assert store.subjobs(job.id) == [
        SubjobRecord(job.id, i, "init", None, None, None, 0, None, None, None) for i in range(3)
    ]
    assert store.counts(job.id) == {"init": 3}
    assert store.attempts(job.id, 0) == []


def test_whole_job_default_and_listing_order(store: Store) -> None:
    jobs = [store.add_job(f"j{i}", description={}, backend="local") for i in range(3)]
    assert store.list_jobs() == jobs
    assert [s.subjob_id for s in store.subjobs(jobs[0].id)] == [WHOLE_JOB]
    assert jobs[0].backend_options == {}


def test_duplicate_name(store: Store, db: Path) -> None:
    first = add(store, "dup")
    with pytest.raises(DuplicateJobError) as err:
        add(store, "dup", n=5)
    assert str(db) in str(err.value) and "'dup'" in str(err.value)
    assert isinstance(err.value, StoreError) and isinstance(err.value, JobfleetError)
    assert store.list_jobs() == [first]
    assert store.counts(first.id) == {"init": 3}


def test_get_job_not_found(store: Store, db: Path) -> None:
    add(store, "present")
    for ref in (999, "999", "absent"):
        with pytest.raises(JobNotFoundError) as err:
            store.get_job(ref)
        assert str(db) in str(err.value) and str(ref) in str(err.value)


def test_all_digit_name_falls_back_to_name(store: Store) -> None:
    job = add(store, "777")
    assert store.get_job("777") == job  # no job has id 777
    assert store.get_job(job.id) == job


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"subjob_ids": []}, ValueError),
        ({"subjob_ids": [1, 1]}, ValueError),
        ({"subjob_ids": [WHOLE_JOB, 0]}, ValueError),
        ({"subjob_ids": [-5]}, ValueError),
        ({"max_retries": -1}, ValueError),
        ({"description": {"f": object()}}, StoreError),
        ({"description": {"nan": float("nan")}}, StoreError),
    ],
)
def test_add_job_rejects_bad_input(
    store: Store, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    args: dict[str, Any] = {"description": {}, "backend": "local", **kwargs}
    with pytest.raises(error):
        store.add_job("bad", **args)
    assert store.list_jobs() == []


def test_delete_job_cascades_and_ids_are_not_reused(store: Store, db: Path) -> None:
    keep = add(store, "keep")
    gone = add(store, "gone")
    store.record_submitted(gone.id, [(0, "n0"), (1, "n1")])
    store.delete_job(gone.id)
    with pytest.raises(JobNotFoundError):
        store.get_job("gone")
    with pytest.raises(JobNotFoundError, match=str(gone.id)):
        store.subjobs(gone.id)
    with pytest.raises(JobNotFoundError):
        store.counts(gone.id)
    with pytest.raises(JobNotFoundError):
        store.delete_job(gone.id)
    with raw(db) as conn:
        for table in ("subjobs", "attempts"):
            n = conn.execute(f"SELECT count(*) FROM {table} WHERE job_id = ?", (gone.id,))
            assert n.fetchone()[0] == 0
    assert store.list_jobs() == [keep]
    assert add(store, "new").id > gone.id


def test_update_description(store: Store) -> None:
    job = add(store)
    store.update_description(job.id, {"cmd": ["true"], "note": "édité"})
    assert store.get_job(job.id).description == {"cmd": ["true"], "note": "édité"}
    with pytest.raises(JobNotFoundError):
        store.update_description(12345, {})


def test_subjob_filters(store: Store) -> None:
    job = add(store, n=6)
    store.record_submitted(job.id, [(1, "a"), (2, "b"), (4, "c")])
    store.update_statuses([StatusUpdate(job.id, 2, "running")])

    def ids(recs: list[SubjobRecord]) -> list[int]:
        return [r.subjob_id for r in recs]

    assert ids(store.subjobs(job.id, statuses=["submitted"])) == [1, 4]
    assert ids(store.subjobs(job.id, statuses=["init", "running"])) == [0, 2, 3, 5]
    assert ids(store.subjobs(job.id, ids=[5, 1, 3])) == [1, 3, 5]
    assert ids(store.subjobs(job.id, ids=range(4), statuses=["submitted", "running"])) == [1, 2]
    assert store.subjobs(job.id, ids=[]) == []
    assert store.counts(job.id) == {"init": 3, "submitted": 2, "running": 1}
    # Units in init after an attempt (reset for a retry) and failed ones stay; never
    # submitted ones go.
    store.update_statuses([StatusUpdate(job.id, 4, "failed", exit_code=1)])
    store.reset_for_retry(job.id, [1])
    store.update_statuses([StatusUpdate(job.id, 3, "failed", reason="cancelled")])  # attempt 0
    open_ones = store.subjobs(job.id, statuses=["init", "failed"], submitted_once=True)
    assert [(r.subjob_id, r.status) for r in open_ones] == [
        (1, "init"),
        (3, "failed"),
        (4, "failed"),
    ]


def test_active_by_backend(store: Store) -> None:
    local = add(store, "l", n=4)
    slurm = add(store, "s", n=2, backend="slurm")
    store.record_submitted(local.id, [(0, "p0"), (1, "p1"), (2, "p2")])
    store.record_submitted(slurm.id, [(0, "123_0")])
    store.update_statuses(
        [StatusUpdate(local.id, 1, "running"), StatusUpdate(local.id, 2, "completed")]
    )
    active = store.active("local")
    assert [(r.job_id, r.subjob_id, r.status) for r in active] == [
        (local.id, 0, "submitted"),
        (local.id, 1, "running"),
    ]
    assert [r.native_id for r in store.active("slurm")] == ["123_0"]
    assert store.active("htcondor") == []

"""Tests of jobfleet.store: the durable SQLite job store.

Multi-process tests use the ``spawn`` start method so children open their own
connections from scratch, as separate jobfleet processes would. Nothing waits on
a fixed sleep: every wait is on an event, queue or condition with a deadline.
"""

from __future__ import annotations

import enum
import itertools
import multiprocessing as mp
import os
import queue
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobfleet import _schema
from jobfleet.errors import DuplicateJobError, JobfleetError, JobNotFoundError, StoreError
from jobfleet.store import (
    DEFAULT_DB_ENV,
    FINAL_STATUSES,
    SCHEMA_VERSION,
    STATUS_ORDER,
    WHOLE_JOB,
    JobRecord,
    StatusUpdate,
    Store,
    SubjobRecord,
    default_db_path,
)
from jobfleet.store import connection as store_connection

CTX = mp.get_context("spawn")
DEADLINE = 120.0  # generous: only reached when something is truly stuck


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def collect(out: Any, procs: Sequence[BaseProcess], count: int) -> list[Any]:
    """Take ``count`` results from ``out``, failing fast if a child process died."""
    results: list[Any] = []
    deadline = time.monotonic() + DEADLINE
    while len(results) < count:
        try:
            results.append(out.get(timeout=0.05))
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise AssertionError(f"{dead[0].name} died, exit code {dead[0].exitcode}") from None
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for child results") from None
    return results


@pytest.fixture
def spawn() -> Iterator[Callable[..., BaseProcess]]:
    """Start child processes; any still alive at teardown (a failed test) are killed."""
    started: list[BaseProcess] = []

    def start(target: Callable[..., None], *args: Any) -> BaseProcess:
        proc = CTX.Process(target=target, args=args)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.is_alive():
            proc.kill()
        proc.join(DEADLINE)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobfleet.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as s:
        yield s


def add(store: Store, name: str = "job", n: int | None = 3, **kw: Any) -> JobRecord:
    ids = (WHOLE_JOB,) if n is None else range(n)
    kw.setdefault("backend", "local")
    kw.setdefault("description", {"cmd": ["echo", name]})
    return store.add_job(name, subjob_ids=ids, **kw)


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


# -- opening, paths, schema ------------------------------------------------------


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DEFAULT_DB_ENV, str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
    monkeypatch.delenv(DEFAULT_DB_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "jobfleet" / "jobfleet.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / ".local/share/jobfleet/jobfleet.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_db_path() == tmp_path / "home" / ".local/share/jobfleet/jobfleet.db"


def test_default_path_used_when_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DEFAULT_DB_ENV, str(tmp_path / "deep" / "env.db"))
    with Store() as s:
        assert s.path == tmp_path / "deep" / "env.db"
    assert (tmp_path / "deep" / "env.db").exists()


def test_open_creates_dirs_wal_and_current_schema(db: Path) -> None:
    with Store(db) as s:
        assert s.schema_version == SCHEMA_VERSION == 4
        assert s.integrity_check() == "ok"
    assert db.exists()
    with raw(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "subjobs", "attempts", "leases"} <= tables
    with Store(db) as s:  # reopening an up-to-date store is a no-op
        assert s.schema_version == SCHEMA_VERSION


def test_closed_store_refuses_work(db: Path) -> None:
    s = Store(db)
    with s:
        add(s)
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.list_jobs()


def test_transaction_left_open_by_an_interrupt_is_rolled_back(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C between two statements can leave the shared connection inside a transaction;
    the next call must still work (it failed with "cannot start a transaction within a
    transaction") and the half-done work must not be kept."""
    conn = store._conn
    assert conn is not None
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO leases (scope, owner, expires_at) VALUES ('x', 'y', 1e12)")
    with caplog.at_level("WARNING", logger="jobfleet.store"):
        record = add(store, "after")
    assert [j.name for j in store.list_jobs()] == [record.name]
    assert store.lease_holder("x") is None
    assert "rolling back a transaction left open" in caplog.text


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        Store(bad)


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


# -- schema versions --------------------------------------------------------------

# Hand-written on purpose (not taken from _schema) so the test pins what version 1 was.
V1_DDL = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, backend TEXT NOT NULL,
    backend_options TEXT NOT NULL DEFAULT '{}', description TEXT NOT NULL,
    max_retries INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE subjobs (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, subjob_id INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'init', native_id TEXT, exit_code INTEGER, reason TEXT,
    attempt INTEGER NOT NULL DEFAULT 0, submitted_at REAL, started_at REAL, finished_at REAL,
    PRIMARY KEY (job_id, subjob_id)) WITHOUT ROWID;
CREATE INDEX subjobs_by_status ON subjobs (status, job_id);
CREATE TABLE leases (scope TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)
    WITHOUT ROWID;
INSERT INTO jobs VALUES (7, 'old', 'slurm', '{"qos": "low"}', '{"cmd": ["run"]}', 3, 1000.0);
INSERT INTO subjobs VALUES
    (7, 0, 'init', NULL, NULL, NULL, 0, NULL, NULL, NULL),
    (7, 1, 'failed', '55_1', 1, 'boom', 2, 1100.0, 1110.0, 1120.0),
    (7, 2, 'running', '55_2', NULL, NULL, 1, 1200.0, 1210.0, NULL);
INSERT INTO leases VALUES ('poll:slurm', 'host:1', 4102444800.0);  -- year 2100
PRAGMA user_version = 1;
"""


def test_migration_from_version_1(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with raw(db) as conn:
        conn.executescript(V1_DDL)
    with Store(db) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.integrity_check() == "ok"
        job = s.get_job("old")
        assert (job.id, job.backend_options, job.description) == (
            7,
            {"qos": "low"},
            {"cmd": ["run"]},
        )
        assert s.attempts(7, 0) == []
        assert s.noted_submissions(7) == {}  # version 4's column: no call under way
        assert s.attempts(7, 1) == [
            SubjobRecord(7, 1, "failed", "55_1", 1, "boom", 2, 1100.0, 1110.0, 1120.0)
        ]
        assert s.attempts(7, 2) == [s.subjobs(7, ids=[2])[0]]
        # The migrated database works like a new one: the history trigger is live.
        s.update_statuses([StatusUpdate(7, 2, "completed", exit_code=0)])
        assert s.attempts(7, 2)[0].status == "completed"
        s.reset_for_retry(7, [1])
        s.record_submitted(7, [(1, "56_1")])
        assert [(a.attempt, a.status) for a in s.attempts(7, 1)] == [
            (2, "failed"),
            (3, "submitted"),
        ]
        assert not s.acquire_lease("poll:slurm", "other", 10.0)  # the lease survived
        assert s.acquire_lease("poll:slurm", "host:1", 10.0)


def test_migration_from_version_2_moves_the_retry_policy_into_its_column(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with raw(db) as conn:
        conn.executescript(V1_DDL)
        conn.executescript(
            """UPDATE jobs SET backend_options =
                 '{"qos": "low", "__jobfleet_policy__": {"max_failed_fraction": 0.25}}';
               INSERT INTO jobs VALUES (8, 'plain', 'local', '{}', '{"cmd": ["x"]}', 0, 2.0);"""
        )
    with Store(db) as s:
        old, plain = s.get_job("old"), s.get_job("plain")
        assert (old.backend_options, old.max_failed_fraction) == ({"qos": "low"}, 0.25)
        assert (plain.backend_options, plain.max_failed_fraction) == ({}, 1.0)
        new = s.add_job("new", description={}, backend="local", max_failed_fraction=0.5)
        assert s.get_job("new") == new and new.max_failed_fraction == 0.5
        with pytest.raises(ValueError, match="max_failed_fraction"):
            s.add_job("bad", description={}, backend="local", max_failed_fraction=1.5)


def test_failed_migration_step_rolls_back(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db):
        pass
    bad = _schema.Migration(
        SCHEMA_VERSION + 1, "broken", ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")
    )
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, bad))
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot open"):
        Store(db)
    monkeypatch.undo()
    with Store(db) as s, raw(db) as conn:
        assert s.schema_version == SCHEMA_VERSION
        found = conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'")
        assert found.fetchone() is None


def test_newer_schema_is_refused(db: Path) -> None:
    with Store(db) as s:
        add(s)
    with raw(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer jobfleet") as err:
        Store(db)
    assert str(db) in str(err.value) and "99" in str(err.value)


# -- leases -----------------------------------------------------------------------


def test_lease_owners_expiry_takeover_renewal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(store_connection, "now", lambda: clock[0])

    assert store.acquire_lease("poll:local", "A", ttl=10)
    assert not store.acquire_lease("poll:local", "B", ttl=10)
    assert store.acquire_lease("poll:other", "B", ttl=10)  # scopes are independent
    clock[0] = 1_008.0
    assert store.acquire_lease("poll:local", "A", ttl=10)  # renewed until 1018
    clock[0] = 1_015.0  # past the first expiry, before the renewed one
    assert not store.acquire_lease("poll:local", "B", ttl=10)
    clock[0] = 1_018.0  # expired: B takes over
    assert store.acquire_lease("poll:local", "B", ttl=10)
    assert not store.acquire_lease("poll:local", "A", ttl=10)
    store.release_lease("poll:local", "A")  # not A's: no effect
    assert not store.acquire_lease("poll:local", "A", ttl=10)
    store.release_lease("poll:local", "B")
    assert store.acquire_lease("poll:local", "A", ttl=10)
    with pytest.raises(ValueError):
        store.acquire_lease("poll:local", "A", ttl=0)


def _racer(db: str, me: str, scopes: int, start: Barrier, out: Any) -> None:
    with Store(db) as s:
        start.wait(DEADLINE)
        leases = [s.acquire_lease(f"scope{i}", me, 60.0) for i in range(scopes)]
        created = []
        for i in range(scopes):
            try:
                s.add_job(f"race{i}", description={"by": me}, backend="local")
                created.append(True)
            except DuplicateJobError:  # anything else (e.g. "locked") fails the child
                created.append(False)
        out.put((me, leases, created))


def test_leases_and_job_names_are_atomic_across_processes(
    db: Path, spawn: Callable[..., BaseProcess]
) -> None:
    Store(db).close()
    n, scopes = 4, 25
    start, out = CTX.Barrier(n), CTX.Queue()
    procs = [spawn(_racer, str(db), f"p{i}", scopes, start, out) for i in range(n)]
    results = {me: (leases, created) for me, leases, created in collect(out, procs, len(procs))}
    for p in procs:
        p.join(DEADLINE)
        assert p.exitcode == 0
    with Store(db) as s:
        for i in range(scopes):
            lease_winners = [me for me, (leases, _) in results.items() if leases[i]]
            creators = [me for me, (_, created) in results.items() if created[i]]
            assert len(lease_winners) == 1, f"scope{i}: {lease_winners}"
            assert len(creators) == 1, f"race{i}: {creators}"
            assert s.get_job(f"race{i}").description == {"by": creators[0]}


# -- crashes and concurrency ------------------------------------------------------


def _crash_child(db: str, job_id: int, n: int, when: str, ready: Event) -> None:
    store = Store(db)
    # A tiny page cache makes SQLite spill uncommitted pages into the WAL, so the
    # kill leaves half-written frames that recovery has to discard.
    assert store._conn is not None
    store._conn.execute("PRAGMA cache_size = 8")

    def updates() -> Iterator[StatusUpdate]:
        for sid in range(n):
            if when == "mid" and sid == n // 2:
                ready.set()
                threading.Event().wait()  # block inside the open transaction until killed
            yield StatusUpdate(job_id, sid, "completed", exit_code=0)

    store.update_statuses(updates())
    ready.set()
    threading.Event().wait()


@pytest.mark.parametrize("when", ["mid", "after-commit"])
def test_sigkill_during_update_statuses_is_all_or_nothing(
    db: Path, when: str, spawn: Callable[..., BaseProcess]
) -> None:
    n = 20_000
    with Store(db) as s:
        job = add(s, "crash", n=n)
        s.record_submitted(job.id, [(i, f"native-{i}") for i in range(n)])
    wal = Path(f"{db}-wal")
    wal_before = wal.stat().st_size if wal.exists() else 0
    ready = CTX.Event()
    child = spawn(_crash_child, str(db), job.id, n, when, ready)
    try:
        assert ready.wait(DEADLINE), "child never reached the kill point"
        if when == "mid":
            # Proof that the child is inside its write transaction: the lock is taken.
            with Store(db, timeout=0.05) as probe, pytest.raises(StoreError, match="locked"):
                probe.acquire_lease("probe", "me", 1.0)
            # ...and its uncommitted pages have reached the WAL file on disk.
            assert wal.exists() and wal.stat().st_size > wal_before
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(DEADLINE)
    assert child.exitcode == -signal.SIGKILL

    with Store(db) as s:
        assert s.integrity_check() == "ok"
        expected = "submitted" if when == "mid" else "completed"
        assert s.counts(job.id) == {expected: n}
        subs = s.subjobs(job.id)
        assert [r.native_id for r in subs] == [f"native-{i}" for i in range(n)]
        assert {r.attempt for r in subs} == {1}
        assert s.attempts(job.id, n - 1)[0].status == expected
        # The store is fully usable afterwards: the dead writer's lock is gone.
        changed = s.update_statuses(StatusUpdate(job.id, i, "failed") for i in range(n))
        assert changed == (n if when == "mid" else 0)


def _writer(
    db: str, rows_job: int, shared_job: int, w: int, n: int, start: Barrier, out: Any
) -> None:
    with Store(db) as s:
        start.wait(DEADLINE)
        changed = 0
        for k in range(n):
            changed += s.update_statuses([StatusUpdate(rows_job, w * n + k, "running")])
            # attempt = attempt + 1 on one shared row: a lost update would show here.
            s.record_submitted(shared_job, [(WHOLE_JOB, f"w{w}-{k}")])
        out.put(("writer", w, changed))


def _reader(
    db: str, rows_job: int, shared_job: int, total: int, start: Barrier, stop: Event, out: Any
) -> None:
    problems: list[str] = []
    reads = last_running = last_attempt = 0
    with Store(db) as s:
        start.wait(DEADLINE)
        while True:
            finished = stop.is_set()
            counts = s.counts(rows_job)
            if sum(counts.values()) != total:
                problems.append(f"counts do not add up: {counts}")
            running = counts.get("running", 0)
            attempt = s.subjobs(shared_job)[0].attempt
            if running < last_running or attempt < last_attempt:
                problems.append(
                    f"went backwards: {running}<{last_running} or {attempt}<{last_attempt}"
                )
            last_running, last_attempt = running, attempt
            reads += 1
            if finished:
                break
    out.put(("reader", reads, problems))


def test_many_processes_hammering_one_file(db: Path, spawn: Callable[..., BaseProcess]) -> None:
    writers, per_writer = 4, 500
    total = writers * per_writer
    with Store(db) as s:
        rows = add(s, "rows", n=total)
        shared = add(s, "shared", n=None)
        s.record_submitted(rows.id, [(i, f"r{i}") for i in range(total)])
    start, stop, out = CTX.Barrier(writers + 1), CTX.Event(), CTX.Queue()
    procs = [
        spawn(_writer, str(db), rows.id, shared.id, w, per_writer, start, out)
        for w in range(writers)
    ]
    reader = spawn(_reader, str(db), rows.id, shared.id, total, start, stop, out)
    results = collect(out, [*procs, reader], len(procs))
    stop.set()
    [(_, reads, problems)] = collect(out, [reader], 1)
    for p in [*procs, reader]:
        p.join(DEADLINE)
        assert p.exitcode == 0

    assert sorted(results) == [("writer", w, per_writer) for w in range(writers)]
    assert problems == [] and reads > 0
    with Store(db) as s:
        assert s.integrity_check() == "ok"
        assert s.counts(rows.id) == {"running": total}
        assert all(r.started_at is not None for r in s.subjobs(rows.id))
        [current] = s.subjobs(shared.id)
        assert current.attempt == total
        history = s.attempts(shared.id, WHOLE_JOB)
        assert [a.attempt for a in history] == list(range(1, total + 1))
        expected = {f"w{w}-{k}" for w in range(writers) for k in range(per_writer)}
        assert {a.native_id for a in history} == expected


def test_threads_share_one_store(store: Store) -> None:
    threads_n, per_thread = 8, 100
    job = add(store, "threads", n=threads_n * per_thread)
    shared = add(store, "shared", n=None)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(per_thread):
                sid = t * per_thread + k
                store.record_submitted(job.id, [(sid, f"t{sid}")])
                store.update_statuses([StatusUpdate(job.id, sid, "completed", exit_code=0)])
                store.record_submitted(shared.id, [(WHOLE_JOB, f"t{t}-{k}")])
                store.counts(job.id)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    assert errors == []
    assert store.counts(job.id) == {"completed": threads_n * per_thread}
    assert store.subjobs(shared.id)[0].attempt == threads_n * per_thread


def test_write_waits_then_reports_busy(db: Path) -> None:
    with Store(db, timeout=0.1) as s, raw(db) as other:
        job = add(s, n=1)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked") as err:
            s.record_submitted(job.id, [(0, "x")])
        assert str(db) in str(err.value)
        assert s.counts(job.id) == {"init": 1}  # reads are not blocked by the writer
        other.execute("ROLLBACK")
        s.record_submitted(job.id, [(0, "x")])
        assert s.counts(job.id) == {"submitted": 1}


def test_writes_take_the_lock_before_reading(db: Path) -> None:
    # Another process creates the same name while add_job waits for the write lock.
    # Only a transaction that locked before its duplicate check reports the clash as
    # DuplicateJobError; a deferred one would fail with "database is locked".
    with Store(db) as s, raw(db) as other:
        waiting = threading.Event()
        assert s._conn is not None
        s._conn.set_trace_callback(
            lambda sql: waiting.set() if sql.startswith(("BEGIN", "INSERT INTO jobs")) else None
        )
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO jobs (name, backend, description, created_at)"
            " VALUES ('x', 'local', '{}', 0)"
        )
        outcome: list[BaseException] = []

        def racer() -> None:
            try:
                s.add_job("x", description={}, backend="local")
            except BaseException as exc:  # inspected below
                outcome.append(exc)

        thread = threading.Thread(target=racer)
        thread.start()
        assert waiting.wait(DEADLINE)
        other.execute("COMMIT")
        thread.join(DEADLINE)
        assert not thread.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], DuplicateJobError), outcome


def test_large_job_one_batch(store: Store) -> None:
    n = 100_000
    job = add(store, "big", n=n)
    assert store.counts(job.id) == {"init": n}
    store.record_submitted(job.id, [(i, f"{i}") for i in range(n)])
    cycle = ("running", "completed", "failed", "submitted")
    changed = store.update_statuses(StatusUpdate(job.id, i, cycle[i % 4]) for i in range(n))
    assert changed == 3 * n // 4
    assert store.counts(job.id) == {s: n // 4 for s in cycle}
    failed = store.subjobs(job.id, statuses=["failed"])
    assert [r.subjob_id for r in failed] == list(range(2, n, 4))
    assert all(r.finished_at is not None and r.started_at is None for r in failed)
    assert store.attempts(job.id, n - 3)[0].status == "completed"
    # Everything still open completes in a second poll.
    assert store.update_statuses(StatusUpdate(job.id, i, "completed") for i in range(n)) == n // 2
    assert store.counts(job.id) == {"completed": 3 * n // 4, "failed": n // 4}
    assert store.integrity_check() == "ok"


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

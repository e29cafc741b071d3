"""Crashes and concurrency: SIGKILL mid-write, many processes and threads on one file.

Multi-process tests use the ``spawn`` start method so children open their own
connections from scratch, as separate jobfleet processes would. Nothing waits on
a fixed sleep: every wait is on an event, queue or condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

from jobfleet.errors import DuplicateJobError, StoreError
from jobfleet.store import WHOLE_JOB, StatusUpdate, Store

from .conftest import CTX, DEADLINE, add, collect, raw

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

"""The durable job store: jobs, their subjobs and every submission attempt, in SQLite.

One file (see :func:`default_db_path`) is shared by the CLI, pollers and any
number of other processes. It runs in WAL mode so readers never block writers;
every write is a ``BEGIN IMMEDIATE`` transaction (waiting up to ``timeout``
seconds for the write lock), so concurrent processes serialise their writes
instead of failing half-way, and a process killed mid-write loses only its
uncommitted transaction. One :class:`Store` may be shared between threads.

Statuses are plain strings ordered ``init < submitted < running < failed <
completed``; ``failed`` and ``completed`` are final. Polls
(:meth:`Store.update_statuses`) only move a subjob forward and never touch a
final one; explicit actions (:meth:`Store.record_submitted`,
:meth:`Store.reset_for_retry`) are authoritative.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jobfleet._schema import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JOB_COLS,
    NOTE_TAG_SQL,
    RANK,
    RESET_SQL,
    SCHEMA_VERSION,
    STATUS_ORDER,
    SUBJOB_COLS,
    SUBJOB_FIELDS,
    SUBMIT_MANY_SQL,
    SUBMIT_SQL,
    UPDATE_SQL,
)
from jobfleet.errors import DuplicateJobError, StoreError
from jobfleet.store import connection
from jobfleet.store.connection import DEFAULT_DB_ENV, default_db_path
from jobfleet.store.leases import LeaseTable
from jobfleet.store.records import (
    WHOLE_JOB,
    JobRecord,
    StatusUpdate,
    SubjobRecord,
    job_from_row,
    status_text,
)

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_DB_ENV",
    "FINAL_STATUSES",
    "SCHEMA_VERSION",
    "STATUS_ORDER",
    "WHOLE_JOB",
    "JobRecord",
    "StatusUpdate",
    "Store",
    "SubjobRecord",
    "default_db_path",
]

log = logging.getLogger("jobfleet.store")


class Store(LeaseTable):
    """The job store at ``path`` (default: :func:`default_db_path`): jobs, subjobs, leases.

    Opening creates missing parent directories and the database, switches it to
    WAL and migrates it to :data:`SCHEMA_VERSION`. ``timeout`` is how long a
    write waits for another process's write to finish before raising
    :class:`~jobfleet.errors.StoreError`.
    """

    # -- jobs -------------------------------------------------------------------

    def add_job(
        self,
        name: str,
        *,
        description: dict[str, Any],
        backend: str,
        backend_options: dict[str, Any] | None = None,
        subjob_ids: Iterable[int] = (WHOLE_JOB,),
        max_retries: int = 0,
        max_failed_fraction: float = 1.0,
    ) -> JobRecord:
        """Store a new job and its subjobs, all in ``init`` at attempt 0.

        ``subjob_ids`` is either ``(WHOLE_JOB,)`` or distinct non-negative ids.
        Raises :class:`DuplicateJobError` if ``name`` is taken.
        """
        ids = list(subjob_ids)
        if not name:
            raise ValueError(f"{self.path}: a job needs a non-empty name")
        if max_retries < 0:
            raise ValueError(f"{self.path}: job {name!r}: max_retries must be >= 0")
        if not 0.0 <= max_failed_fraction <= 1.0:
            raise ValueError(f"{self.path}: job {name!r}: max_failed_fraction must be in [0, 1]")
        if not ids:
            raise ValueError(f"{self.path}: job {name!r} has no subjobs")
        if ids != [WHOLE_JOB] and (len(set(ids)) != len(ids) or min(ids) < 0):
            raise ValueError(
                f"{self.path}: job {name!r}: subjob ids must be distinct and >= 0 "
                f"(or just WHOLE_JOB)"
            )
        options = backend_options or {}
        try:
            options_text = json.dumps(options, allow_nan=False)
            description_text = json.dumps(description, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: job {name!r} cannot be stored as JSON: {exc}") from exc
        values = (
            name,
            backend,
            options_text,
            description_text,
            max_retries,
            connection.now(),
            max_failed_fraction,
        )
        with self._txn(f"adding job {name!r}", write=True) as conn:
            # We hold the write lock, so check-then-insert cannot race.
            if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (name,)).fetchone():
                raise DuplicateJobError(f"{self.path}: a job named {name!r} already exists")
            cur = conn.execute(
                "INSERT INTO jobs (name, backend, backend_options, description, max_retries,"
                " created_at, max_failed_fraction) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            job_id = cur.lastrowid
            assert job_id is not None
            # One statement for all rows: binding 100,000 rows one by one costs more.
            conn.execute(
                "INSERT INTO subjobs (job_id, subjob_id) SELECT ?, value FROM json_each(?)",
                (job_id, json.dumps([int(i) for i in ids])),
            )
        log.info("%s: added job %r (id %d, %d subjobs)", self.path, name, job_id, len(ids))
        # Round-tripped through JSON, exactly as get_job would return it.
        return job_from_row((job_id, *values))

    def get_job(self, ref: str | int) -> JobRecord:
        """Find a job by id (an int or an all-digit string) or else by name."""
        select = f"SELECT {JOB_COLS} FROM jobs WHERE"
        with self._txn(f"reading job {ref!r}", write=False) as conn:
            row: Sequence[Any] | None = None
            if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
                row = conn.execute(f"{select} id = ?", (int(ref),)).fetchone()
            if row is None and isinstance(ref, str):
                # An all-digit name is still reachable when no job has that id.
                row = conn.execute(f"{select} name = ?", (ref,)).fetchone()
        if row is None:
            raise self._not_found(ref)
        return job_from_row(row)

    def list_jobs(self) -> list[JobRecord]:
        """All jobs, oldest first."""
        with self._txn("listing jobs", write=False) as conn:
            rows = conn.execute(f"SELECT {JOB_COLS} FROM jobs ORDER BY id").fetchall()
        return [job_from_row(r) for r in rows]

    def delete_job(self, job_id: int) -> None:
        """Delete a job with its subjobs and history."""
        with self._txn(f"deleting job {job_id}", write=True) as conn:
            if conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 0:
                raise self._not_found(job_id)
        log.info("%s: deleted job %d", self.path, job_id)

    def update_description(self, job_id: int, description: dict[str, Any]) -> None:
        """Replace a job's description."""
        try:
            text = json.dumps(description, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: job {job_id} cannot be stored as JSON: {exc}") from exc
        with self._txn(f"updating job {job_id}", write=True) as conn:
            cur = conn.execute("UPDATE jobs SET description = ? WHERE id = ?", (text, job_id))
            if cur.rowcount == 0:
                raise self._not_found(job_id)

    # -- subjobs: reading -------------------------------------------------------

    def subjobs(
        self,
        job_id: int,
        *,
        statuses: Iterable[str] | None = None,
        ids: Iterable[int] | None = None,
        submitted_once: bool = False,
    ) -> list[SubjobRecord]:
        """A job's subjobs ordered by id, optionally only those in ``statuses``/``ids``;
        ``submitted_once``: without the units in init that were never submitted (a big
        job's while it is being submitted, which a watcher only needs to count)."""
        rows = self._select_subjobs(SUBJOB_COLS, job_id, statuses, ids, submitted_once)
        return list(map(SubjobRecord._make, rows))

    def subjob_ids(
        self,
        job_id: int,
        *,
        statuses: Iterable[str] | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[int]:
        """Just the ids of :meth:`subjobs` (a submission of 100,000 needs nothing more)."""
        return [row[0] for row in self._select_subjobs("subjob_id", job_id, statuses, ids)]

    def _select_subjobs(
        self,
        columns: str,
        job_id: int,
        statuses: Iterable[str] | None,
        ids: Iterable[int] | None,
        submitted_once: bool = False,
    ) -> list[Any]:
        sql = f"SELECT {columns} FROM subjobs WHERE job_id = ?"
        if submitted_once:
            sql += " AND NOT (status = 'init' AND attempt = 0)"
        params: list[Any] = [job_id]
        # json_each binds any number of values as one parameter (no 999-variable limit).
        if statuses is not None:
            sql += " AND status IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([status_text(s) for s in statuses]))
        if ids is not None:
            sql += " AND subjob_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([int(i) for i in ids]))
        with self._txn(f"reading subjobs of job {job_id}", write=False) as conn:
            rows = conn.execute(sql + " ORDER BY subjob_id", params).fetchall()
            if not rows:
                self._require_job(conn, job_id)
        return rows

    def counts(self, job_id: int) -> dict[str, int]:
        """How many of a job's subjobs are in each status (statuses present only)."""
        with self._txn(f"counting subjobs of job {job_id}", write=False) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM subjobs WHERE job_id = ? GROUP BY status", (job_id,)
            ).fetchall()
            if not rows:
                self._require_job(conn, job_id)
        return {str(status): int(n) for status, n in rows}

    def attempts(self, job_id: int, subjob_id: int) -> list[SubjobRecord]:
        """Every submission of one subjob, oldest first (empty if never submitted)."""
        with self._txn(f"reading attempts of job {job_id}", write=False) as conn:
            rows = conn.execute(
                f"SELECT {SUBJOB_COLS} FROM attempts WHERE job_id = ? AND subjob_id = ?"
                " ORDER BY attempt",
                (job_id, subjob_id),
            ).fetchall()
            if not rows:
                self._require_subjob(conn, job_id, subjob_id)
        return list(map(SubjobRecord._make, rows))

    def active(self, backend: str) -> list[SubjobRecord]:
        """Subjobs submitted or running, across all jobs using ``backend``."""
        marks = ", ".join("?" * len(ACTIVE_STATUSES))
        with self._txn(f"reading active subjobs of backend {backend!r}", write=False) as conn:
            rows = conn.execute(
                f"SELECT {', '.join('s.' + c for c in SUBJOB_FIELDS)}"
                f" FROM subjobs AS s JOIN jobs AS j ON j.id = s.job_id"
                f" WHERE s.status IN ({marks}) AND j.backend = ?"
                " ORDER BY s.job_id, s.subjob_id",
                (*sorted(ACTIVE_STATUSES), backend),
            ).fetchall()
        return list(map(SubjobRecord._make, rows))

    # -- subjobs: writing -------------------------------------------------------

    def record_submitted(self, job_id: int, submitted: Sequence[tuple[int, str]]) -> None:
        """Record that ``(subjob_id, native_id)`` pairs were handed to the backend.

        All in one transaction, committed on return: each subjob becomes
        ``submitted`` with a new attempt (and history row); results of the
        previous attempt are cleared. Unknown subjobs roll the whole batch back.
        """
        if not submitted:
            return
        ids = [sid for sid, _ in submitted]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.path}: job {job_id}: a subjob is listed twice as submitted")
        now = connection.now()
        with self._txn(f"recording submission of job {job_id}", write=True) as conn:
            natives = {str(native) for _, native in submitted}
            if len(natives) == 1:  # the local driver's: one statement, no binding per row
                cur = conn.execute(
                    SUBMIT_MANY_SQL, (job_id, json.dumps([int(i) for i in ids]), natives.pop(), now)
                )
            else:
                cur = conn.executemany(
                    SUBMIT_SQL, ((job_id, sid, str(native), now) for sid, native in submitted)
                )
            if cur.rowcount != len(ids):
                raise self._missing(conn, job_id, ids)
        log.debug("%s: job %d: %d subjobs submitted", self.path, job_id, len(ids))

    def note_submitting(self, job_id: int, subjob_ids: Sequence[int], tag: str) -> None:
        """Commit that a scheduler call tagged ``tag`` is about to submit these subjobs.

        Called BEFORE the call: if the process dies after the scheduler accepted
        it but before :meth:`record_submitted`, the subjobs are still ``init``
        with this tag, and the next submission asks the scheduler for the tag
        instead of sending them again. Subjobs no longer in ``init`` are left
        alone; recording or resetting a subjob clears its tag.
        """
        if not subjob_ids:
            return
        ids = json.dumps([int(i) for i in subjob_ids])
        with self._txn(f"noting a submission of job {job_id}", write=True) as conn:
            conn.execute(NOTE_TAG_SQL, (job_id, ids, tag))

    def noted_submissions(self, job_id: int) -> dict[str, list[int]]:
        """Tags of scheduler calls never recorded, with their subjobs (still ``init``)."""
        with self._txn(f"reading noted submissions of job {job_id}", write=False) as conn:
            rows = conn.execute(
                "SELECT submit_tag, subjob_id FROM subjobs WHERE job_id = ? AND status = 'init'"
                " AND submit_tag IS NOT NULL ORDER BY subjob_id",
                (job_id,),
            ).fetchall()
        noted: dict[str, list[int]] = {}
        for tag, subjob_id in rows:
            noted.setdefault(str(tag), []).append(int(subjob_id))
        return noted

    def update_statuses(self, updates: Iterable[StatusUpdate]) -> int:
        """Apply one poll's findings in a single transaction; return how many rows changed.

        A subjob only moves forward in the status order and a final status is
        never overwritten; anything else (including unknown jobs or subjobs) is
        ignored. ``started_at`` is set when first seen running, ``finished_at``
        when it turns final. ``updates`` is consumed lazily inside the
        transaction; an unknown status string raises ``ValueError`` and rolls
        the whole batch back.
        """
        now = connection.now()
        path = self.path

        def params() -> Iterator[tuple[Any, ...]]:
            for u in updates:
                status = status_text(u.status)
                rank = RANK.get(status)
                if rank is None:
                    raise ValueError(
                        f"{path}: job {u.job_id} subjob {u.subjob_id}: unknown status {status!r}"
                    )
                final = status in FINAL_STATUSES
                yield (u.job_id, u.subjob_id, status, u.exit_code, u.reason, final, now, rank)

        with self._txn("updating subjob statuses", write=True) as conn:
            changed = conn.executemany(UPDATE_SQL, params()).rowcount
        changed = max(changed, 0)  # rowcount is -1 for an empty batch
        log.debug("%s: status poll changed %d subjobs", self.path, changed)
        return changed

    def reset_for_retry(self, job_id: int, subjob_ids: Iterable[int]) -> None:
        """Put subjobs back to ``init`` for resubmission.

        The attempt counter and the attempts history are kept; the subjob row's
        per-attempt fields (native id, exit code, reason, timestamps) are cleared.
        """
        ids = list(dict.fromkeys(subjob_ids))
        if not ids:
            return
        with self._txn(f"resetting subjobs of job {job_id}", write=True) as conn:
            cur = conn.executemany(RESET_SQL, ((job_id, sid) for sid in ids))
            if cur.rowcount != len(ids):
                raise self._missing(conn, job_id, ids)
        log.debug("%s: job %d: %d subjobs reset for retry", self.path, job_id, len(ids))

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
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from jobfleet._schema import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JOB_COLS,
    RANK,
    RESET_SQL,
    SCHEMA_VERSION,
    STATUS_ORDER,
    SUBJOB_COLS,
    SUBJOB_FIELDS,
    SUBMIT_MANY_SQL,
    SUBMIT_SQL,
    UPDATE_SQL,
    migrate,
    read_version,
)
from jobfleet.errors import DuplicateJobError, JobNotFoundError, StoreError

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

DEFAULT_DB_ENV = "JOBFLEET_DB"
WHOLE_JOB = -1


def _now() -> float:
    # One indirection so tests can move the clock (lease expiry) without sleeping.
    return time.time()


def default_db_path() -> Path:
    """Where the store lives unless told otherwise.

    ``$JOBFLEET_DB`` if set, else ``$XDG_DATA_HOME/jobfleet/jobfleet.db``, else
    ``~/.local/share/jobfleet/jobfleet.db``. A relative ``XDG_DATA_HOME`` is
    ignored, as the XDG spec requires.
    """
    explicit = os.environ.get(DEFAULT_DB_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "jobfleet" / "jobfleet.db"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: its description and where it runs."""

    id: int
    name: str
    backend: str
    backend_options: dict[str, Any]
    description: dict[str, Any]
    max_retries: int
    created_at: float
    #: Automatic retries stop once more than this fraction of the subjobs has failed.
    max_failed_fraction: float = 1.0


class SubjobRecord(NamedTuple):
    """One subjob's current state, or one past attempt of it (see :meth:`Store.attempts`).

    A named tuple, not a frozen dataclass: a watch cycle builds one per active
    subjob, and a tuple is built about four times faster (10,000: 2.6 ms, not 9 ms).
    """

    job_id: int
    subjob_id: int
    status: str
    native_id: str | None
    exit_code: int | None
    reason: str | None
    attempt: int
    submitted_at: float | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What a poll learned about one subjob."""

    job_id: int
    subjob_id: int
    status: str
    exit_code: int | None = None
    reason: str | None = None


def _status_text(status: object) -> str:
    # Accept str-valued enums (jobfleet.status.JobStatus) as well as plain strings.
    value = status.value if isinstance(status, Enum) else status
    return str(value)


def _job(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        id=row[0],
        name=row[1],
        backend=row[2],
        backend_options=json.loads(row[3]),
        description=json.loads(row[4]),
        max_retries=row[5],
        created_at=row[6],
        max_failed_fraction=row[7],
    )


class Store:
    """A connection to the job store at ``path`` (default: :func:`default_db_path`).

    Opening creates missing parent directories and the database, switches it to
    WAL and migrates it to :data:`SCHEMA_VERSION`. ``timeout`` is how long a
    write waits for another process's write to finish before raising
    :class:`StoreError`.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0
    ) -> None:
        self.path = Path(os.fspath(path)).expanduser() if path is not None else default_db_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store's directory: {exc}") from exc
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves.
            conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA foreign_keys = ON")
            # Only ask for WAL when needed: switching takes an exclusive lock that
            # would make every open contend with the other processes' writes.
            self._use_wal(conn, timeout)
            # With WAL, NORMAL loses nothing on a process crash (only on power loss).
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, self.path)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: cannot open the job store: {exc}") from exc
            raise
        self._conn: sqlite3.Connection | None = conn
        log.debug("%s: job store open", self.path)

    def _use_wal(self, conn: sqlite3.Connection, timeout: float) -> None:
        """Switch a new file to WAL mode, waiting for a process opening it at the same time.

        The switch needs an exclusive lock, and SQLite reports "database is
        locked" at once (no busy wait) when another connection is switching
        the same new file: so retry until ``timeout``, re-reading the mode.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                    return
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if mode.lower() != "wal":
                log.warning("%s: WAL unavailable, journal mode is %s", self.path, mode)
            return

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- plumbing ---------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; further calls raise :class:`StoreError`. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _txn(self, what: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run one transaction; sqlite errors become StoreError."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"{self.path}: the job store is closed ({what})")
            try:
                if conn.in_transaction:
                    # Left open by an exception raised between two statements of an
                    # earlier call (Ctrl-C); nobody else can own it while we hold the lock.
                    log.warning("%s: rolling back a transaction left open", self.path)
                    conn.execute("ROLLBACK")
                try:
                    # IMMEDIATE takes the write lock up front: a deferred transaction that
                    # upgrades later can fail with SQLITE_BUSY without waiting. BEGIN is
                    # inside the try: Ctrl-C right after it must roll back too.
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {what}: {exc}") from exc

    def _not_found(self, ref: str | int) -> JobNotFoundError:
        return JobNotFoundError(f"{self.path}: no job {ref!r} in the job store")

    def _require_job(self, conn: sqlite3.Connection, job_id: int) -> None:
        if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
            raise self._not_found(job_id)

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database file."""
        with self._txn("reading schema version", write=False) as conn:
            return read_version(conn)

    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; ``"ok"`` means the file is sound."""
        with self._txn("integrity check", write=False) as conn:
            return "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))

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
        created = _now()
        with self._txn(f"adding job {name!r}", write=True) as conn:
            # We hold the write lock, so check-then-insert cannot race.
            if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (name,)).fetchone():
                raise DuplicateJobError(f"{self.path}: a job named {name!r} already exists")
            cur = conn.execute(
                "INSERT INTO jobs (name, backend, backend_options, description, max_retries,"
                " created_at, max_failed_fraction) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    backend,
                    options_text,
                    description_text,
                    max_retries,
                    created,
                    max_failed_fraction,
                ),
            )
            job_id = cur.lastrowid
            assert job_id is not None
            # One statement for all rows: binding 100,000 rows one by one costs more.
            conn.execute(
                "INSERT INTO subjobs (job_id, subjob_id) SELECT ?, value FROM json_each(?)",
                (job_id, json.dumps([int(i) for i in ids])),
            )
        log.info("%s: added job %r (id %d, %d subjobs)", self.path, name, job_id, len(ids))
        row = (
            job_id,
            name,
            backend,
            options_text,
            description_text,
            max_retries,
            created,
            max_failed_fraction,
        )
        return _job(row)  # round-tripped through JSON, exactly as get_job would return it

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
        return _job(row)

    def list_jobs(self) -> list[JobRecord]:
        """All jobs, oldest first."""
        with self._txn("listing jobs", write=False) as conn:
            rows = conn.execute(f"SELECT {JOB_COLS} FROM jobs ORDER BY id").fetchall()
        return [_job(r) for r in rows]

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
            params.append(json.dumps([_status_text(s) for s in statuses]))
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

    def _require_subjob(self, conn: sqlite3.Connection, job_id: int, subjob_id: int) -> None:
        found = conn.execute(
            "SELECT 1 FROM subjobs WHERE job_id = ? AND subjob_id = ?", (job_id, subjob_id)
        ).fetchone()
        if found is None:
            self._require_job(conn, job_id)
            raise StoreError(f"{self.path}: job {job_id} has no subjob {subjob_id}")

    # -- subjobs: writing -------------------------------------------------------

    def _missing(
        self, conn: sqlite3.Connection, job_id: int, subjob_ids: Iterable[int]
    ) -> StoreError:
        """The error for a batch naming subjobs that do not exist (error path only)."""
        self._require_job(conn, job_id)
        wanted = json.dumps(sorted(set(subjob_ids)))
        missing = [
            r[0]
            for r in conn.execute(
                "SELECT value FROM json_each(?) WHERE value NOT IN"
                " (SELECT subjob_id FROM subjobs WHERE job_id = ?) LIMIT 10",
                (wanted, job_id),
            )
        ]
        return StoreError(f"{self.path}: job {job_id} has no subjob(s) {missing}")

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
        now = _now()
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

    def update_statuses(self, updates: Iterable[StatusUpdate]) -> int:
        """Apply one poll's findings in a single transaction; return how many rows changed.

        A subjob only moves forward in the status order and a final status is
        never overwritten; anything else (including unknown jobs or subjobs) is
        ignored. ``started_at`` is set when first seen running, ``finished_at``
        when it turns final. ``updates`` is consumed lazily inside the
        transaction; an unknown status string raises ``ValueError`` and rolls
        the whole batch back.
        """
        now = _now()
        path = self.path

        def params() -> Iterator[tuple[Any, ...]]:
            for u in updates:
                status = _status_text(u.status)
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

    # -- leases -----------------------------------------------------------------

    def acquire_lease(self, scope: str, owner: str, ttl: float) -> bool:
        """Try to hold ``scope`` for ``ttl`` seconds; True if ``owner`` now holds it.

        Succeeds when the lease is free, expired or already ``owner``'s (renewing
        it to now + ttl). Atomic across processes: one statement under the write lock.
        """
        if ttl <= 0:
            raise ValueError(f"{self.path}: lease {scope!r}: ttl must be > 0, got {ttl}")
        now = _now()
        with self._txn(f"acquiring lease {scope!r}", write=True) as conn:
            cur = conn.execute(
                "INSERT INTO leases (scope, owner, expires_at) VALUES (?1, ?2, ?3)"
                " ON CONFLICT (scope) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at"
                " WHERE leases.owner = excluded.owner OR leases.expires_at <= ?4",
                (scope, owner, now + ttl, now),
            )
            held = cur.rowcount == 1
        log.debug("%s: lease %r for %r: %s", self.path, scope, owner, held)
        return held

    def release_lease(self, scope: str, owner: str) -> None:
        """Give up ``scope`` if ``owner`` holds it (no-op otherwise)."""
        with self._txn(f"releasing lease {scope!r}", write=True) as conn:
            conn.execute("DELETE FROM leases WHERE scope = ? AND owner = ?", (scope, owner))

    def lease_holder(self, scope: str) -> str | None:
        """Who holds ``scope`` now (``None`` if nobody, or the lease expired)."""
        with self._txn(f"reading lease {scope!r}", write=False) as conn:
            row = conn.execute(
                "SELECT owner FROM leases WHERE scope = ? AND expires_at > ?", (scope, _now())
            ).fetchone()
        return None if row is None else str(row[0])

    def take_over_lease(self, scope: str, previous: str, owner: str, ttl: float) -> bool:
        """Hold ``scope`` for ``ttl`` seconds if ``previous`` still holds it (e.g. it died)."""
        if ttl <= 0:
            raise ValueError(f"{self.path}: lease {scope!r}: ttl must be > 0, got {ttl}")
        with self._txn(f"taking over lease {scope!r}", write=True) as conn:
            cur = conn.execute(
                "UPDATE leases SET owner = ?, expires_at = ? WHERE scope = ? AND owner = ?",
                (owner, _now() + ttl, scope, previous),
            )
            taken = cur.rowcount == 1
        log.debug(
            "%s: lease %r taken over from %r by %r: %s", self.path, scope, previous, owner, taken
        )
        return taken

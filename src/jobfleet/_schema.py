"""The on-disk format of the jobfleet job store: statuses, DDL, migrations, core SQL.

The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[i]`` upgrades a
database from version ``i`` to ``i + 1``; each step runs in its own ``BEGIN
IMMEDIATE`` transaction together with the ``user_version`` bump, so a crash
mid-migration leaves the database at the previous version, never half-way.

Version history:

1. ``jobs``, ``subjobs`` and ``leases``.
2. ``attempts``: one row per submission of a subjob, kept in step with the
   current attempt by a trigger; existing subjobs that were already submitted
   get one history row describing their current attempt.
3. ``jobs.max_failed_fraction`` (it used to travel in the backend options).
4. ``subjobs.submit_tag``: the tag of a scheduler call under way for a subjob
   still in ``init``, committed before the call, so that a submission killed
   before it could record the scheduler's answer is found again, not resent.

Never edit a shipped step: append a new one.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobfleet.errors import StoreError

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "JOB_COLS",
    "MIGRATIONS",
    "NOTE_TAG_SQL",
    "RANK",
    "RESET_SQL",
    "SCHEMA_VERSION",
    "STATUS_ORDER",
    "SUBJOB_COLS",
    "SUBJOB_FIELDS",
    "SUBMIT_SQL",
    "UPDATE_SQL",
    "Migration",
    "migrate",
    "read_version",
]

log = logging.getLogger("jobfleet.store")

# Statuses as stored; the SQL below and the attempts trigger encode their order.
STATUS_ORDER: tuple[str, ...] = ("init", "submitted", "running", "failed", "completed")
FINAL_STATUSES = frozenset({"failed", "completed"})
ACTIVE_STATUSES = frozenset({"submitted", "running"})
RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}
# Rank of the stored status, computed in SQL so a poll batch needs no per-row SELECT.
# Unknown stored values rank highest: better stuck than silently rewritten.
RANK_SQL = (
    "CASE status "
    + " ".join(f"WHEN '{s}' THEN {r}" for s, r in RANK.items())
    + f" ELSE {len(RANK)} END"
)
FINAL_SQL = ", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES))

SUBJOB_FIELDS = (
    "job_id",
    "subjob_id",
    "status",
    "native_id",
    "exit_code",
    "reason",
    "attempt",
    "submitted_at",
    "started_at",
    "finished_at",
)
SUBJOB_COLS = ", ".join(SUBJOB_FIELDS)
JOB_COLS = (
    "id, name, backend, backend_options, description, max_retries, created_at, max_failed_fraction"
)

# Numbered parameters: ?3 (new status) is used several times per row.
UPDATE_SQL = f"""
UPDATE subjobs SET
    status = ?3,
    exit_code = coalesce(?4, exit_code),
    reason = coalesce(?5, reason),
    started_at = CASE WHEN ?3 = 'running' AND started_at IS NULL THEN ?7 ELSE started_at END,
    finished_at = CASE WHEN ?6 THEN ?7 ELSE finished_at END
WHERE job_id = ?1 AND subjob_id = ?2
  AND status NOT IN ({FINAL_SQL})
  AND ({RANK_SQL}) < ?8
"""
SUBMIT_SQL = """
UPDATE subjobs SET
    status = 'submitted', native_id = ?3, attempt = attempt + 1, submitted_at = ?4,
    started_at = NULL, finished_at = NULL, exit_code = NULL, reason = NULL,
    submit_tag = NULL
WHERE job_id = ?1 AND subjob_id = ?2
"""
#: SUBMIT_SQL for many subjobs sharing one native id, their ids as one JSON array (?2).
SUBMIT_MANY_SQL = """
UPDATE subjobs SET
    status = 'submitted', native_id = ?3, attempt = attempt + 1, submitted_at = ?4,
    started_at = NULL, finished_at = NULL, exit_code = NULL, reason = NULL,
    submit_tag = NULL
WHERE job_id = ?1 AND subjob_id IN (SELECT value FROM json_each(?2))
"""
RESET_SQL = """
UPDATE subjobs SET
    status = 'init', native_id = NULL, exit_code = NULL, reason = NULL,
    submitted_at = NULL, started_at = NULL, finished_at = NULL, submit_tag = NULL
WHERE job_id = ? AND subjob_id = ?
"""
#: Notes the tag of a scheduler call about to submit init subjobs (ids as a JSON array, ?2).
NOTE_TAG_SQL = """
UPDATE subjobs SET submit_tag = ?3
WHERE job_id = ?1 AND subjob_id IN (SELECT value FROM json_each(?2)) AND status = 'init'
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: the SQL statements that take ``version - 1`` to ``version``."""

    version: int
    summary: str
    statements: Sequence[str]


_V1 = Migration(
    1,
    "jobs, subjobs and leases",
    (
        # AUTOINCREMENT so a deleted job's id is never reused: backends and logs
        # may still mention it.
        """
        CREATE TABLE jobs (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            name            TEXT    NOT NULL UNIQUE,
            backend         TEXT    NOT NULL,
            backend_options TEXT    NOT NULL DEFAULT '{}',
            description     TEXT    NOT NULL,
            max_retries     INTEGER NOT NULL DEFAULT 0,
            created_at      REAL    NOT NULL
        )
        """,
        """
        CREATE TABLE subjobs (
            job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            subjob_id    INTEGER NOT NULL,
            status       TEXT    NOT NULL DEFAULT 'init',
            native_id    TEXT,
            exit_code    INTEGER,
            reason       TEXT,
            attempt      INTEGER NOT NULL DEFAULT 0,
            submitted_at REAL,
            started_at   REAL,
            finished_at  REAL,
            PRIMARY KEY (job_id, subjob_id)
        ) WITHOUT ROWID
        """,
        # active() scans by status across all jobs; the key already serves per-job reads.
        "CREATE INDEX subjobs_by_status ON subjobs (status, job_id)",
        """
        CREATE TABLE leases (
            scope      TEXT PRIMARY KEY,
            owner      TEXT NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
    ),
)

_V2 = Migration(
    2,
    "attempts history",
    (
        """
        CREATE TABLE attempts (
            job_id       INTEGER NOT NULL,
            subjob_id    INTEGER NOT NULL,
            attempt      INTEGER NOT NULL,
            status       TEXT    NOT NULL,
            native_id    TEXT,
            exit_code    INTEGER,
            reason       TEXT,
            submitted_at REAL,
            started_at   REAL,
            finished_at  REAL,
            PRIMARY KEY (job_id, subjob_id, attempt),
            FOREIGN KEY (job_id, subjob_id)
                REFERENCES subjobs (job_id, subjob_id) ON DELETE CASCADE
        ) WITHOUT ROWID
        """,
        # A trigger rather than application code keeps the current attempt's row in
        # step with the subjob on every path (submit, poll) at C speed, inside the
        # writer's transaction. Rows back in 'init' (reset for a retry) are skipped so
        # the finished attempt's history is kept as it ended.
        """
        CREATE TRIGGER subjobs_track_attempt
        AFTER UPDATE ON subjobs
        WHEN NEW.attempt > 0 AND NEW.status <> 'init'
        BEGIN
            INSERT OR REPLACE INTO attempts (
                job_id, subjob_id, attempt, status, native_id, exit_code, reason,
                submitted_at, started_at, finished_at
            ) VALUES (
                NEW.job_id, NEW.subjob_id, NEW.attempt, NEW.status, NEW.native_id,
                NEW.exit_code, NEW.reason, NEW.submitted_at, NEW.started_at, NEW.finished_at
            );
        END
        """,
        # Version 1 kept only the latest attempt, so that is all the history we can fill.
        """
        INSERT INTO attempts (
            job_id, subjob_id, attempt, status, native_id, exit_code, reason,
            submitted_at, started_at, finished_at
        )
        SELECT job_id, subjob_id, attempt, status, native_id, exit_code, reason,
               submitted_at, started_at, finished_at
        FROM subjobs
        WHERE attempt > 0
        """,
    ),
)

_V3 = Migration(
    3,
    "retry policy column",
    (
        # max_failed_fraction used to travel inside backend_options under a reserved key.
        "ALTER TABLE jobs ADD COLUMN max_failed_fraction REAL NOT NULL DEFAULT 1.0",
        """
        UPDATE jobs SET
            max_failed_fraction = COALESCE(
                json_extract(backend_options, '$.__jobfleet_policy__.max_failed_fraction'), 1.0),
            backend_options = json_remove(backend_options, '$.__jobfleet_policy__')
        WHERE json_extract(backend_options, '$.__jobfleet_policy__') IS NOT NULL
        """,
    ),
)

_V4 = Migration(
    4,
    "submission tags",
    ("ALTER TABLE subjobs ADD COLUMN submit_tag TEXT",),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)


def read_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the database (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database behind ``conn`` (in autocommit mode) up to ``SCHEMA_VERSION``.

    Safe to run from several processes at once: each step re-reads the version
    after taking the write lock, so a step another process already applied is
    skipped. Returns the version found before migrating.
    """
    found = read_version(conn)
    _refuse_newer(found, path)
    current = found
    while current < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = read_version(conn)
            _refuse_newer(current, path)
            if current < SCHEMA_VERSION:
                step = MIGRATIONS[current]
                for statement in step.statements:
                    conn.execute(statement)
                # user_version is part of the database header, so the bump commits
                # (or rolls back) together with the step.
                conn.execute(f"PRAGMA user_version = {step.version:d}")
                log.info(
                    "%s: migrated job store schema %d -> %d (%s)",
                    path,
                    current,
                    step.version,
                    step.summary,
                )
                current = step.version
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return found


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: the job store has schema version {version}, but this jobfleet "
            f"only knows versions up to {SCHEMA_VERSION}; it was written by a newer "
            "jobfleet - upgrade jobfleet to use it"
        )

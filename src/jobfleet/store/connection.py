"""The store's connection: opening the file (WAL, migrations), transactions, lookups."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from jobfleet._schema import migrate, read_version
from jobfleet.errors import JobNotFoundError, StoreError

__all__ = ["DEFAULT_DB_ENV", "StoreConnection", "default_db_path", "now"]

log = logging.getLogger("jobfleet.store")

DEFAULT_DB_ENV = "JOBFLEET_DB"


def now() -> float:
    """Wall-clock seconds; one indirection so tests can move the clock (lease expiry)."""
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


class StoreConnection:
    """What the parts of :class:`~jobfleet.store.Store` share: the open file, the lock
    that lets threads share it, transactions, and the errors for missing rows."""

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

    def _require_subjob(self, conn: sqlite3.Connection, job_id: int, subjob_id: int) -> None:
        found = conn.execute(
            "SELECT 1 FROM subjobs WHERE job_id = ? AND subjob_id = ?", (job_id, subjob_id)
        ).fetchone()
        if found is None:
            self._require_job(conn, job_id)
            raise StoreError(f"{self.path}: job {job_id} has no subjob {subjob_id}")

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

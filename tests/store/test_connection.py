"""The store file: where it lives, opening it, WAL, schema versions and migrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobfleet import _schema
from jobfleet.errors import StoreError
from jobfleet.store import (
    DEFAULT_DB_ENV,
    SCHEMA_VERSION,
    StatusUpdate,
    Store,
    SubjobRecord,
    default_db_path,
)

from .conftest import add, raw

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

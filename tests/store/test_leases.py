"""Leases: one owner at a time, expiry, takeover, renewal, atomic across processes."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from jobfleet.errors import DuplicateJobError
from jobfleet.store import Store
from jobfleet.store import connection as store_connection

from .conftest import CTX, DEADLINE, collect

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

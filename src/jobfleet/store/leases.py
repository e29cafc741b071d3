"""Leases in the job store: who polls a backend, who submits a job.

What they are for: :mod:`jobfleet.fleet.leases`.
"""

from __future__ import annotations

import logging

from jobfleet.store import connection
from jobfleet.store.connection import StoreConnection

__all__ = ["LeaseTable"]

log = logging.getLogger("jobfleet.store")


class LeaseTable(StoreConnection):
    """Named leases with an owner and an expiry, each change one statement under the write lock."""

    def acquire_lease(self, scope: str, owner: str, ttl: float) -> bool:
        """Try to hold ``scope`` for ``ttl`` seconds; True if ``owner`` now holds it.

        Succeeds when the lease is free, expired or already ``owner``'s (renewing
        it to now + ttl). Atomic across processes: one statement under the write lock.
        """
        if ttl <= 0:
            raise ValueError(f"{self.path}: lease {scope!r}: ttl must be > 0, got {ttl}")
        now = connection.now()
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
                "SELECT owner FROM leases WHERE scope = ? AND expires_at > ?",
                (scope, connection.now()),
            ).fetchone()
        return None if row is None else str(row[0])

    def take_over_lease(self, scope: str, previous: str, owner: str, ttl: float) -> bool:
        """Hold ``scope`` for ``ttl`` seconds if ``previous`` still holds it (e.g. it died)."""
        if ttl <= 0:
            raise ValueError(f"{self.path}: lease {scope!r}: ttl must be > 0, got {ttl}")
        with self._txn(f"taking over lease {scope!r}", write=True) as conn:
            cur = conn.execute(
                "UPDATE leases SET owner = ?, expires_at = ? WHERE scope = ? AND owner = ?",
                (owner, connection.now() + ttl, scope, previous),
            )
            taken = cur.rowcount == 1
        log.debug(
            "%s: lease %r taken over from %r by %r: %s", self.path, scope, previous, owner, taken
        )
        return taken

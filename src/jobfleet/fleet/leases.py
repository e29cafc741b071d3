"""The store's leases as the fleet uses them: who holds one, whether that holder is gone,
and the submission lease that serialises every hand-over of one job's units.

A lease holder is named ``<host>:<pid>:<tag>``. A holder on this host whose
process no longer exists is *dead*: its lease can be taken over at once
instead of waiting for the time-to-live (a submitter killed with SIGKILL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from jobfleet.errors import JobfleetError
from jobfleet.store import JobRecord, Store

__all__ = [
    "LEASE_TTL_ENV",
    "JobBusyError",
    "dead_holder",
    "default_ttl",
    "someone_submitting",
    "submission_lease",
]

log = logging.getLogger("jobfleet.fleet.leases")

#: Environment variable overriding the poll lease's lifetime in seconds (default 30).
LEASE_TTL_ENV = "JOBFLEET_LEASE_TTL"
_SUBMIT_TTL = 600.0  # renewed after every recorded batch, so only a stuck submitter runs out


class JobBusyError(JobfleetError):
    """Another process is submitting this job right now."""


def default_ttl() -> float:
    """The poll lease's lifetime: :data:`LEASE_TTL_ENV`, else 30 s."""
    try:
        ttl = float(os.environ.get(LEASE_TTL_ENV, "30"))
    except ValueError:
        ttl = 30.0
    return ttl if ttl > 0 else 30.0


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process here (a zombie nobody has reaped yet is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's, alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc to tell a zombie (or it just went): assume alive, wait for the TTL
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def dead_holder(store: Store, scope: str) -> str | None:
    """The holder of ``scope`` if it is a process of this host that no longer exists."""
    holder = store.lease_holder(scope)
    if holder is None:
        return None
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None  # another machine's process, or not ours to judge: wait for the TTL
    return holder if not _process_exists(int(pid_text)) else None


@contextlib.contextmanager
def submission_lease(store: Store, owner: str, record: JobRecord) -> Iterator[Callable[[], None]]:
    """Hold ``submit:<job id>`` for ``owner``; yields the function that renews it.

    Raises :class:`JobBusyError` while a live process holds it.
    """
    scope = f"submit:{record.id}"
    acquired = store.acquire_lease(scope, owner, _SUBMIT_TTL)
    if not acquired:
        # A submitter killed with SIGKILL keeps its lease for _SUBMIT_TTL; a
        # resume must not have to wait that long when the holder is gone.
        dead = dead_holder(store, scope)
        if dead is not None:
            acquired = store.take_over_lease(scope, dead, owner, _SUBMIT_TTL)
            if acquired:
                log.warning("job %s: took over the submission of dead %s", record.name, dead)
    if not acquired:
        raise JobBusyError(
            f"job {record.name!r} is being submitted by another process; try again later"
        )

    def renew() -> None:
        store.acquire_lease(scope, owner, _SUBMIT_TTL)

    try:
        yield renew
    finally:
        store.release_lease(scope, owner)


def someone_submitting(store: Store, owner: str, record: JobRecord) -> bool:
    """Whether another live process holds the job's submission lease (probed, not kept)."""
    scope, probe = f"submit:{record.id}", f"{owner}:probe"
    if store.acquire_lease(scope, probe, 1.0):
        store.release_lease(scope, probe)
        return False
    return dead_holder(store, scope) is None

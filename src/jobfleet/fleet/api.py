"""The orchestration as plain functions over a store (one :class:`Fleet` per store object).

Keeping one :class:`~jobfleet.fleet.orchestrator.Fleet` per store object means
a process renews its leases under one owner name from call to call.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from jobfleet.errors import BackendError
from jobfleet.fleet import control
from jobfleet.fleet.orchestrator import Fleet, Progress
from jobfleet.fleet.policy import RetryPolicy
from jobfleet.fleet.progress import JobProgress
from jobfleet.job import Job
from jobfleet.store import JobRecord, Store

__all__ = [
    "cancel_job",
    "ensure_runner",
    "fleet_for",
    "remove_job",
    "resubmit_job",
    "submit_job",
    "watch_step",
]

_FLEETS: weakref.WeakKeyDictionary[Store, Fleet] = weakref.WeakKeyDictionary()


def fleet_for(store: Store) -> Fleet:
    """The :class:`Fleet` this process uses for ``store``."""
    fleet = _FLEETS.get(store)
    if fleet is None:
        fleet = _FLEETS[store] = Fleet(store)
    return fleet


def submit_job(
    store: Store,
    job: Job,
    backend_name: str,
    options: dict[str, Any] | None = None,
    *,
    max_retries: int = 0,
    max_failed_fraction: float = 1.0,
    resume: bool = False,
    progress: Progress | None = None,
) -> JobRecord:
    """Add ``job`` to the store and submit it.

    ``resume``: the job is already stored; submit only its units still in init.
    """
    fleet = fleet_for(store)
    if resume:
        record = fleet.job_record(job.name)
        if record.backend != backend_name:
            raise BackendError(
                f"job {job.name!r} was submitted to {record.backend!r}, not {backend_name!r}"
            )
        fleet.resume_job(record.id, progress=progress)
        return record
    policy = RetryPolicy(max_retries=max_retries, max_failed_fraction=max_failed_fraction)
    return fleet.submit_job(job, backend_name, options, policy=policy, progress=progress)


def watch_step(store: Store, job_ids: Iterable[int]) -> dict[int, JobProgress]:
    """One poll cycle for ``job_ids`` (see :meth:`Fleet.watch_step`)."""
    return fleet_for(store).watch_step(job_ids)


def cancel_job(store: Store, ref: str | int, subjob_ids: Iterable[int] | None = None) -> int:
    """See :func:`jobfleet.fleet.control.cancel`."""
    return control.cancel(fleet_for(store), ref, subjob_ids)


def resubmit_job(
    store: Store,
    ref: str | int,
    *,
    failed_only: bool = False,
    subjob_ids: Iterable[int] | None = None,
) -> int:
    """See :func:`jobfleet.fleet.control.resubmit`."""
    return control.resubmit(fleet_for(store), ref, failed_only=failed_only, subjob_ids=subjob_ids)


def remove_job(store: Store, ref: str | int, *, force: bool = False) -> None:
    """See :func:`jobfleet.fleet.control.remove`."""
    control.remove(fleet_for(store), ref, force=force)


def ensure_runner(store: Store, record: JobRecord) -> int | None:
    """See :meth:`Fleet.ensure_runner`."""
    return fleet_for(store).ensure_runner(record)

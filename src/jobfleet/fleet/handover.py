"""Handing a stored job's ``init`` units to its driver, so that none is lost or sent twice.

Each scheduler call's native ids are committed as the call returns (while the
next batch is prepared, :class:`~jobfleet.fleet.recorder.BatchRecorder`), and
each call's tag before it goes out: units a killed submission got to the
scheduler without recording are looked up by that tag and recorded, not sent
again. The caller holds the job's submission lease throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from jobfleet.errors import JobfleetError
from jobfleet.fleet.driver import Driver, unit_of
from jobfleet.fleet.recorder import BatchRecorder
from jobfleet.job import Job
from jobfleet.store import JobRecord, Store

__all__ = ["Progress", "hand_over", "record_found"]

log = logging.getLogger("jobfleet.fleet.handover")

#: Called with the number of units just recorded as submitted (to advance a progress bar).
Progress = Callable[[int], None]


def hand_over(
    store: Store,
    driver: Driver,
    record: JobRecord,
    job: Job,
    ids: Iterable[int] | None,
    progress: Progress | None,
    renew: Callable[[], None],
    *,
    reset: Sequence[int] = (),
) -> int:
    """Submit the units of ``job`` (of ``ids``, or all) that are in init; returns how many.

    ``reset``: ended units to put back in init first (a resubmission); ``renew``
    extends the submission lease, called after each recorded batch.
    """
    store.reset_for_retry(record.id, reset)
    record_found(store, driver, record, job)
    # Read under the lease: only what nobody has submitted in the meantime.
    fresh = store.subjob_ids(record.id, statuses=["init"], ids=ids)
    units = [unit_of(job, subjob_id) for subjob_id in fresh]
    if not units:
        return 0
    sent = 0

    def record_submitted(pairs: Sequence[tuple[int, str]]) -> None:
        nonlocal sent
        store.record_submitted(record.id, pairs)
        sent += len(pairs)
        renew()
        if progress is not None:
            progress(len(pairs))

    def note(subjob_ids: Sequence[int], tag: str) -> None:
        store.note_submitting(record.id, subjob_ids, tag)

    try:
        # Each batch is committed while the next one is prepared.
        with BatchRecorder(record_submitted) as recorder:
            driver.submit(job, units, recorder.record, note)
    except OSError as err:
        # Disk full, read-only, permissions: what was sent is recorded, the rest stays
        # init; say where it failed and how to go on.
        where = f" ({err.filename})" if err.filename else ""
        raise JobfleetError(
            f"job {record.name!r}: preparing subjobs failed: {err.strerror or err}{where}; "
            f"{sent} of {len(units)} submitted, the rest wait: fix that and run "
            f"`jobfleet submit SPEC --resume {record.name}`"
        ) from None
    log.info("job %s: %d units submitted to %s", record.name, len(units), driver.name)
    return len(units)


def record_found(store: Store, driver: Driver, record: JobRecord, job: Job) -> None:
    """Record the init units that an earlier, killed submission did get to the scheduler."""
    find = getattr(driver, "find_submitted", None)
    if find is None:  # a driver without tags (local) never leaves a call unrecorded
        return
    noted = store.noted_submissions(record.id)
    found: list[tuple[int, str]] = find(job, noted) if noted else []
    if found:
        store.record_submitted(record.id, found)
        log.warning(
            "job %s: %d subjobs had reached %s before the last submission stopped; "
            "recorded as submitted, not sent again",
            record.name, len(found), driver.name,
        )  # fmt: skip

"""Acting on stored jobs: cancel, resubmit, remove."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from jobfleet.fleet.driver import CANCELLED, unit_of
from jobfleet.fleet.orchestrator import Fleet, JobActiveError, Progress
from jobfleet.job import Job
from jobfleet.store import JobRecord, StatusUpdate, SubjobRecord
from jobfleet.workdir import read_exit_code

__all__ = ["cancel", "remove", "resubmit"]

log = logging.getLogger("jobfleet.fleet.control")

_UNFINISHED = ("init", "submitted", "running")


def cancel(
    fleet: Fleet,
    ref: str | int,
    subjob_ids: Iterable[int] | None = None,
    *,
    reason: str = CANCELLED,
) -> int:
    """Cancel a job's unfinished units (or those of ``subjob_ids``); returns how many.

    They are marked ``failed`` ("cancelled") in the store first: a final status
    is sticky, so how the scheduler later says they ended cannot replace the
    reason. Then the driver stops them. Holding the job's submission lease
    keeps a concurrent submission from handing over a unit being cancelled.

    A unit whose command has already ended (its exit code file says how) but
    that no poll has recorded yet is left alone: the next poll records its true
    status and collects its outputs, instead of a cancel hiding a result.
    """
    store = fleet.store
    record = fleet.job_record(ref)
    with fleet.lease_submission(record):
        targets = store.subjobs(record.id, statuses=_UNFINISHED, ids=subjob_ids)
        ended = _ended_unrecorded(record, targets)
        if ended:
            log.info("job %s: %d units ended before the cancel", record.name, len(ended))
            targets = [r for r in targets if r.subjob_id not in ended]
        if not targets:
            return 0
        store.update_statuses(
            StatusUpdate(record.id, r.subjob_id, "failed", reason=reason) for r in targets
        )
        handed_over = [r for r in targets if r.status != "init"]
        if handed_over:
            fleet.driver_for(record).cancel({record.id: record}, handed_over)
    log.info("job %s: cancelled %d units", record.name, len(targets))
    return len(targets)


def _ended_unrecorded(record: JobRecord, targets: Sequence[SubjobRecord]) -> set[int]:
    """Ids of the handed-over ``targets`` whose exit code file holds their exit code."""
    handed_over = [r for r in targets if r.status != "init"]
    if not handed_over:
        return set()
    job = Job(record.name, job_dict=record.description)
    return {
        r.subjob_id
        for r in handed_over
        if read_exit_code(unit_of(job, r.subjob_id).working_dir) is not None
    }


def resubmit(
    fleet: Fleet,
    ref: str | int,
    *,
    failed_only: bool = False,
    subjob_ids: Iterable[int] | None = None,
    progress: Progress | None = None,
) -> int:
    """Submit ended units again: the failed ones, or those of ``subjob_ids``; returns how many.

    Without ``subjob_ids`` (or with ``failed_only``) only failed units are
    taken. Naming a unit that is still queued or running is an error.
    """
    store = fleet.store
    record = fleet.job_record(ref)
    if subjob_ids is None or failed_only:
        targets = store.subjobs(record.id, statuses=["failed"], ids=subjob_ids)
    else:
        targets = store.subjobs(record.id, ids=subjob_ids)
        busy = [r.subjob_id for r in targets if r.status in ("submitted", "running")]
        if busy:
            raise JobActiveError(
                f"job {record.name!r}: subjob(s) {_id_list(busy)} still queued or running; "
                "cancel them first"
            )
    if not targets:
        return 0
    job = Job(record.name, job_dict=record.description)
    ended = [r.subjob_id for r in targets if r.status in ("failed", "completed")]
    ids = [r.subjob_id for r in targets]
    return fleet.hand_over(record, job, ids, progress, reset=ended)


def remove(fleet: Fleet, ref: str | int, *, force: bool = False) -> None:
    """Delete a job from the store (its files stay); ``force`` cancels what still runs first."""
    record = fleet.job_record(ref)
    active = fleet.store.subjobs(record.id, statuses=["submitted", "running"])
    if active and not force:
        raise JobActiveError(
            f"job {record.name!r} has {len(active)} subjob(s) queued or running; "
            "cancel it first or use --force"
        )
    if active:
        cancel(fleet, record.id)
    fleet.store.delete_job(record.id)
    fleet.forget(record.id)
    log.info("job %s removed from the store", record.name)


def _id_list(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")

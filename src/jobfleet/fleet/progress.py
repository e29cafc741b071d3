"""Where a stored job stands: counts by status, overall status, and whether it has ended."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobfleet.fleet.driver import CANCELLED
from jobfleet.fleet.policy import RetryPolicy
from jobfleet.store import STATUS_ORDER, SubjobRecord

__all__ = [
    "OPEN_STATUSES",
    "JobProgress",
    "RetryPlan",
    "job_status",
    "never_submitted",
    "plan_retries",
    "retryable",
]

#: Failure reasons after which a unit is never retried automatically: a cancel was
#: wanted, and a resubmission that already failed would only fail again in a loop.
_NO_RETRY_PREFIXES = (CANCELLED, "resubmission failed")
#: The statuses whose units retries and "has it ended" look at one by one.
OPEN_STATUSES = ("init", "failed")


def retryable(record: SubjobRecord, policy: RetryPolicy) -> bool:
    """Whether a failed unit may be retried by its attempt count and failure reason."""
    if record.status != "failed" or record.attempt > policy.max_retries:
        return False
    reason = record.reason or ""
    return not reason.startswith(_NO_RETRY_PREFIXES)


def never_submitted(counts: Mapping[str, int], open_records: Iterable[SubjobRecord]) -> int:
    """How many units are in init without ever having been submitted: counted, not
    listed (``open_records`` may leave them out), as all init units less those listed
    in init after an attempt."""
    attempted = sum(1 for r in open_records if r.status == "init" and r.attempt > 0)
    return max(0, counts.get("init", 0) - attempted)


def job_status(counts: Mapping[str, int]) -> str:
    """The lowest status among a job's subjobs (init < submitted < running < failed < completed)."""
    for status in STATUS_ORDER:
        if counts.get(status):
            return status
    return "init"


@dataclass(frozen=True)
class RetryPlan:
    """What the automatic retries of one job would do now."""

    due: list[SubjobRecord] = field(default_factory=list)  # failed, to be reset and resubmitted
    pending: list[SubjobRecord] = field(default_factory=list)  # reset already, not resubmitted
    stopped: bool = False  # too many failed: no more retries


def plan_retries(
    subjobs: Iterable[SubjobRecord], policy: RetryPolicy, *, total: int | None = None
) -> RetryPlan:
    """Which units of a job to retry under ``policy`` (see :class:`RetryPlan`).

    Only the job's ``init`` and ``failed`` units matter, so ``subjobs`` may be just
    those when ``total`` (the job's number of subjobs) is given.
    """
    records = list(subjobs)
    failed = [r for r in records if r.status == "failed"]
    # A unit back in init after an attempt was reset for a retry that has not been
    # submitted yet (a crash in between): it is owed a submission.
    pending = [r for r in records if r.status == "init" and r.attempt > 0]
    due = [r for r in failed if retryable(r, policy)]
    stopped = bool(due) and policy.stops_retries(
        len(failed), len(records) if total is None else total
    )
    return RetryPlan(due=[] if stopped else due, pending=pending, stopped=stopped)


@dataclass(frozen=True)
class JobProgress:
    """A snapshot of one job, read from the store."""

    job_id: int
    name: str
    backend: str
    counts: dict[str, int]
    total: int
    retry_due: int  # failed units a lease holder will retry
    retry_pending: int  # units reset for a retry, not resubmitted yet
    unsubmitted: int  # init units never submitted (submission interrupted or under way)
    retries_stopped: bool
    submitting: bool  # another process holds the job's submission lease

    @classmethod
    def of(
        cls,
        job_id: int,
        name: str,
        backend: str,
        subjobs: Iterable[SubjobRecord],
        policy: RetryPolicy,
        *,
        submitting: bool,
    ) -> JobProgress:
        records = list(subjobs)
        return cls.from_counts(
            job_id,
            name,
            backend,
            Counter(r.status for r in records),
            [r for r in records if r.status in OPEN_STATUSES],
            policy,
            submitting=submitting,
        )

    @classmethod
    def from_counts(
        cls,
        job_id: int,
        name: str,
        backend: str,
        counts: Mapping[str, int],
        open_records: Iterable[SubjobRecord],
        policy: RetryPolicy,
        *,
        submitting: bool,
    ) -> JobProgress:
        """From the counts by status and only the job's ``init`` and ``failed`` units (of
        which the ``init`` units never submitted may be left out).

        A watcher with 10,000 subjobs then reads a handful of rows per cycle, not all.
        """
        records = [r for r in open_records if r.status in OPEN_STATUSES]
        total = sum(counts.values())
        plan = plan_retries(records, policy, total=total)
        return cls(
            job_id=job_id,
            name=name,
            backend=backend,
            counts={s: counts[s] for s in STATUS_ORDER if counts.get(s)},
            total=total,
            retry_due=len(plan.due),
            retry_pending=len(plan.pending),
            unsubmitted=never_submitted(counts, records),
            retries_stopped=plan.stopped,
            submitting=submitting,
        )

    @property
    def status(self) -> str:
        return job_status(self.counts)

    @property
    def ended(self) -> bool:
        """Nothing more will happen to this job without someone acting."""
        active = self.counts.get("submitted", 0) + self.counts.get("running", 0)
        return not (active or self.retry_due or self.retry_pending or self.submitting)

    @property
    def completed(self) -> bool:
        return self.counts.get("completed", 0) == self.total

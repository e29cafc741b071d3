"""Store-driven orchestration: submit, poll, retry, cancel, resubmit and remove jobs.

Every process (each ``jobfleet`` command, each terminal running ``jobfleet
watch``) works through the store. Per backend, one process at a time holds the
lease ``poll:<backend>``: it polls that backend's driver ONCE per cycle for the
active units of every job in the store, writes the changes in one transaction,
and makes the automatic retries. All other processes only read the store, so
ten terminals watching ten jobs still cost one scheduler query per cycle.

Submissions of one job are serialised by the lease ``submit:<job id>``, so a
retry, a ``resubmit`` and a ``submit --resume`` cannot hand the same unit over
twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from jobfleet._gc import cycle_collector_paused
from jobfleet.errors import JobfleetError, JobNotFoundError
from jobfleet.fleet.driver import (
    Driver,
    get_driver,
    is_registered,
    needs_runner,
)
from jobfleet.fleet.handover import Progress, hand_over
from jobfleet.fleet.leases import (
    LEASE_TTL_ENV,
    JobBusyError,
    default_ttl,
    someone_submitting,
    submission_lease,
)
from jobfleet.fleet.policy import RetryPolicy, policy_of
from jobfleet.fleet.polldrivers import PollDrivers
from jobfleet.fleet.progress import OPEN_STATUSES, JobProgress, never_submitted, plan_retries
from jobfleet.fleet.runner import RUNNER_LOG, spawn_runner
from jobfleet.job import Job
from jobfleet.store import WHOLE_JOB, JobRecord, StatusUpdate, Store, SubjobRecord
from jobfleet.workdir import check_job

__all__ = [
    "LEASE_TTL_ENV",
    "Fleet",
    "JobActiveError",
    "JobBusyError",
    "Progress",
]

log = logging.getLogger("jobfleet.fleet.orchestrator")


class JobActiveError(JobfleetError):
    """The job still has units queued or running (and the action needs it to have none)."""


def _check_writable(directory: Path) -> None:
    """Fail before the store is touched when the working area cannot be written (read-only,
    full, no permission): the job is then not stored at all."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".jobfleet-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise JobfleetError(
            f"working directory {directory} is not writable: {err.strerror or err}; "
            "nothing was stored or submitted"
        ) from None


class Fleet:
    """The orchestration of one process over one store.

    ``owner`` names this process in leases; two :class:`Fleet` objects with
    different owners behave like two processes.
    """

    def __init__(
        self, store: Store, *, owner: str | None = None, lease_ttl: float | None = None
    ) -> None:
        self.store = store
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl if lease_ttl is not None else default_ttl()
        self._poll_drivers = PollDrivers()
        self._records: dict[int, JobRecord] = {}
        self._held: set[str] = set()  # backends whose poll lease this fleet holds
        self._stop_logged: set[int] = set()

    def __repr__(self) -> str:
        return f"Fleet({self.store!r}, owner={self.owner!r})"

    # -- helpers -----------------------------------------------------------------------------

    def job_record(self, ref: str | int) -> JobRecord:
        """The stored job ``ref`` (id or name); descriptions never change, so ids are cached."""
        if isinstance(ref, int) and ref in self._records:
            return self._records[ref]
        record = self.store.get_job(ref)
        self._records[record.id] = record
        return record

    def forget(self, job_id: int) -> None:
        """Drop what is cached about a job (after it was removed)."""
        self._records.pop(job_id, None)
        self._poll_drivers.forget(job_id)

    def driver_for(self, record: JobRecord) -> Driver:
        """A driver built from the options ``record`` was submitted with."""
        return get_driver(record.backend, record.backend_options)

    def holds(self, backend: str) -> bool:
        """Whether this fleet held ``poll:<backend>`` at its last watch step."""
        return backend in self._held

    def lease_submission(
        self, record: JobRecord
    ) -> contextlib.AbstractContextManager[Callable[[], None]]:
        """Hold the job's submission lease (see :func:`~jobfleet.fleet.leases.submission_lease`)."""
        return submission_lease(self.store, self.owner, record)

    def hand_over(
        self,
        record: JobRecord,
        job: Job,
        ids: Iterable[int] | None,
        progress: Progress | None,
        *,
        reset: Sequence[int] = (),
    ) -> int:
        """Submit the units of ``job`` (of ``ids``, or all) that are in init; returns how many.

        Under the job's submission lease; see :func:`~jobfleet.fleet.handover.hand_over`.
        """
        driver = self.driver_for(record)
        with self.lease_submission(record) as renew:
            return hand_over(self.store, driver, record, job, ids, progress, renew, reset=reset)

    # -- submit ------------------------------------------------------------------------------

    def submit_job(
        self,
        job: Job,
        backend_name: str,
        options: dict[str, Any] | None = None,
        *,
        policy: RetryPolicy | None = None,
        progress: Progress | None = None,
    ) -> JobRecord:
        """Store ``job`` with all its subjobs in init, then submit them.

        Everything that can be checked is checked before the store is touched;
        a failure half-way leaves the rest in init for :meth:`resume_job`.
        """
        record = self.store_job(job, backend_name, options, policy=policy)
        self.hand_over(record, job, None, progress)
        return record

    def store_job(
        self,
        job: Job,
        backend_name: str,
        options: dict[str, Any] | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> JobRecord:
        """The first half of :meth:`submit_job`: check ``job`` and store it, all units in init.

        :meth:`hand_over` (``ids=None``) then submits them, in this or another thread.
        """
        options = dict(options or {})
        policy = policy or RetryPolicy()
        with cycle_collector_paused():  # 100,000s of subjobs' dicts and rows
            return self._store_job(job, backend_name, options, policy)

    def _store_job(
        self, job: Job, backend_name: str, options: dict[str, Any], policy: RetryPolicy
    ) -> JobRecord:
        if not job.subjobs:
            job.check_input_data_files()
            job.split()
        check_job(job)
        _check_writable(job.working_dir)
        # Unknown backend or bad options: fail before storing.
        driver = get_driver(backend_name, options)
        ids = sorted(job.subjobs) or [WHOLE_JOB]
        record = self.store.add_job(
            job.name,
            description=job.job_dict,
            backend=backend_name,
            backend_options=dict(options),
            subjob_ids=ids,
            max_retries=policy.max_retries,
            max_failed_fraction=policy.max_failed_fraction,
        )
        self._records[record.id] = record
        self._poll_drivers.stored(record, job, driver)
        return record

    def resume_job(self, ref: str | int, *, progress: Progress | None = None) -> int:
        """Submit the units of a stored job that are still in init; returns how many."""
        record = self.job_record(ref)
        job = Job(record.name, job_dict=record.description)
        return self.hand_over(record, job, None, progress)

    # -- watch -------------------------------------------------------------------------------

    def watch_step(self, job_ids: Iterable[int]) -> dict[int, JobProgress]:
        """One poll cycle (see the module docstring); returns where each watched job stands."""
        records = [self.job_record(job_id) for job_id in job_ids]
        for backend in sorted({r.backend for r in records}):
            if not is_registered(backend):
                log.warning("backend %r has no driver; its jobs cannot be followed", backend)
                continue
            if not self.store.acquire_lease(f"poll:{backend}", self.owner, self.lease_ttl):
                self._held.discard(backend)
                continue
            self._held.add(backend)
            failed_now = self._poll(backend)
            watched = {r.id for r in records if r.backend == backend}
            self._retry(backend, watched | failed_now)
        return {r.id: self.progress(r) for r in records}

    def pause(self, seconds: float) -> None:
        """Wait until the next watch step: ``seconds``, or less when a driver this fleet
        polls learns of a change sooner (the local driver when a unit's process ends)."""
        self._poll_drivers.pause(seconds, self._held)

    def _poll(self, backend: str) -> set[int]:
        """Poll the driver once for all active units of ``backend``; job ids with new failures."""
        active = self.store.active(backend)
        if not active:
            return set()
        job_records = {}
        for job_id in sorted({a.job_id for a in active}):
            with contextlib.suppress(JobNotFoundError):  # removed since active() read it
                job_records[job_id] = self.job_record(job_id)
        updates: list[StatusUpdate] = []
        groups = self._poll_drivers.groups(backend, active, job_records)
        for options, units in groups.items():
            try:
                updates += self._poll_drivers.get(backend, options).poll(job_records, units)
            except (JobfleetError, OSError) as err:
                log.warning("polling backend %r failed (will try again): %s", backend, err)
        if updates:
            changed = self.store.update_statuses(updates)
            log.debug("backend %r: %d updates, %d applied", backend, len(updates), changed)
        return {u.job_id for u in updates if u.status == "failed"}

    def _retry(self, backend: str, job_ids: Iterable[int]) -> None:
        """Automatic retries of the given jobs (lease holder only)."""
        for job_id in sorted(job_ids):
            try:
                record = self.job_record(job_id)
            except JobNotFoundError:
                continue
            if record.backend != backend:
                continue
            policy = policy_of(record)
            open_records, counts = self._open_view(job_id)
            plan = plan_retries(open_records, policy, total=sum(counts.values()))
            if plan.stopped and job_id not in self._stop_logged:
                self._stop_logged.add(job_id)
                log.warning(
                    "job %s: more than %.0f%% of its subjobs failed; retries stopped",
                    record.name,
                    policy.max_failed_fraction * 100,
                )
            if not plan.due and not plan.pending:
                continue
            ids = [r.subjob_id for r in plan.due + plan.pending]
            job = Job(record.name, job_dict=record.description)
            try:
                count = self.hand_over(
                    record, job, ids, None, reset=[r.subjob_id for r in plan.due]
                )
            except JobBusyError:
                continue  # someone else is submitting this job; next cycle
            except (JobfleetError, OSError) as err:
                log.error("job %s: resubmitting for a retry failed: %s", record.name, err)
                self._fail_unsubmitted(record, ids, f"resubmission failed: {err}")
                continue
            log.info("job %s: retrying %d failed units", record.name, count)

    def _fail_unsubmitted(self, record: JobRecord, ids: Sequence[int], reason: str) -> None:
        left = self.store.subjobs(record.id, statuses=["init"], ids=ids)
        self.store.update_statuses(
            StatusUpdate(record.id, r.subjob_id, "failed", reason=reason) for r in left
        )

    def _open_view(self, job_id: int) -> tuple[list[SubjobRecord], dict[str, int]]:
        """The job's failed units and those in init after an attempt, and its counts by
        status (units never submitted are only counted: 10,000 of them while a big job
        is being submitted were read twice per cycle).

        Two reads instead of every subjob per cycle. The units first: a unit that
        moves in between (reset for a retry, then submitted) is then counted as
        active by the second read, so a job never looks ended too early.
        """
        open_records = self.store.subjobs(job_id, statuses=OPEN_STATUSES, submitted_once=True)
        return open_records, self.store.counts(job_id)

    def progress(self, record: JobRecord) -> JobProgress:
        """Where ``record``'s job stands, read from the store."""
        open_records, counts = self._open_view(record.id)
        unsubmitted = never_submitted(counts, open_records) > 0
        return JobProgress.from_counts(
            record.id,
            record.name,
            record.backend,
            counts,
            open_records,
            policy_of(record),
            submitting=unsubmitted and someone_submitting(self.store, self.owner, record),
        )

    def wake(self) -> None:
        """End a :meth:`pause` with nothing running early: new units were just recorded.

        Safe from another thread (a background submission calls it).
        """
        self._poll_drivers.wake()

    def stop_launching(self) -> None:
        """Make the drivers this fleet polls start nothing more (local: no new processes)."""
        self._poll_drivers.stop_launching()

    def stop_watching(self) -> list[int]:
        """Release the poll leases this fleet holds, handing over to a new runner if needed.

        Release first, then look for active units: a job submitted in between
        then either is seen here or finds the lease free and starts its own
        runner. Returns the pids of runners started.
        """
        pids = []
        for backend in sorted(self._held):
            self.store.release_lease(f"poll:{backend}", self.owner)
            if needs_runner(backend):
                job_ids = sorted({a.job_id for a in self.store.active(backend)})
                if job_ids:
                    pid = self._spawn(backend, job_ids)
                    if pid is not None:
                        pids.append(pid)
        self._held.clear()
        return pids

    # -- runner ------------------------------------------------------------------------------

    def ensure_runner(self, record: JobRecord) -> int | None:
        """Start a background runner if ``record``'s backend needs one and nobody polls it.

        Returns the runner's pid, or ``None`` if none was started.
        """
        if not needs_runner(record.backend):
            return None
        return self._spawn(record.backend, [record.id])

    def _spawn(self, backend: str, job_ids: Sequence[int]) -> int | None:
        scope, probe = f"poll:{backend}", f"{self.owner}:probe"
        if not self.store.acquire_lease(scope, probe, 1.0):
            return None  # a live holder polls this backend for every job
        self.store.release_lease(scope, probe)
        first = self.job_record(job_ids[0])
        log_file = Job(first.name, job_dict=first.description).working_dir / RUNNER_LOG
        return spawn_runner(self.store.path, [str(i) for i in job_ids], log_file)

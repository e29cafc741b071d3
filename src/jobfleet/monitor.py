"""Following jobs until they end."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from jobfleet.job import Job
from jobfleet.status import JobStatus

__all__ = ["monitor_jobs"]

log = logging.getLogger("jobfleet.monitor")


def monitor_jobs(jobs: Sequence[Job] | Any, *more: Any, heartbeat: float | None = None) -> int:
    """Update the jobs' statuses every ``heartbeat`` seconds until all have ended.

    Returns the number of jobs that ended ``failed``. Backends that can tell
    when something happened (the local one) wake the loop early, so a short job
    is noticed at once rather than at the next heartbeat.

    The caf.backends form ``monitor_jobs(args, jobs)``, with ``args.heartbeat``,
    is accepted too.
    """
    if more and hasattr(jobs, "heartbeat"):
        heartbeat = jobs.heartbeat if heartbeat is None else heartbeat
        jobs = more[0]
    beat = 5.0 if heartbeat is None else float(heartbeat)
    unfinished = list(jobs)
    failed = 0
    while unfinished:
        for job in unfinished:
            job.update_status()
        still: list[Job] = []
        for job in unfinished:
            if not job.ready():
                still.append(job)
            elif job.status is JobStatus.failed:
                log.error("%r failed", job)
                failed += 1
            else:
                log.info("%r completed", job)
        unfinished = still
        if unfinished:
            log.debug("%d jobs not finished; next check in at most %.1f s", len(unfinished), beat)
            _wait(unfinished, beat)
    if failed:
        log.error("%d of %d jobs failed", failed, len(jobs))
    else:
        log.info("all %d jobs completed", len(jobs))
    return failed


def _wait(jobs: Sequence[Job], seconds: float) -> None:
    waiter = next((getattr(j.result, "wait", None) for j in jobs if j.result is not None), None)
    if callable(waiter):
        waiter(seconds)
    else:
        time.sleep(seconds)

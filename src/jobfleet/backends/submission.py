"""Sending one script to a batch scheduler: never twice, and not beyond the job limit.

Each submission carries a unique tag (the job name's suffix, a comment, ...,
as the scheduler's :meth:`~jobfleet.backends.batch.BatchBackend.submit_command`
puts it). A submit command that fails transiently is tried again, but first the
scheduler is asked for the tag: a try that timed out on our side may still have
been accepted, and sending it again would run the work twice. The tag is handed
to ``on_submitting`` before the first try, so that a process killed before it
heard the answer leaves it in the store for the next one to look up.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import tenacity

from jobfleet.errors import BackendError, CommandError
from jobfleet.job import Job

if TYPE_CHECKING:
    from jobfleet.backends.batch import BatchBackend
    from jobfleet.backends.native import ArrayChunk

__all__ = ["find_tagged", "submit_tagged", "wait_for_room"]

log = logging.getLogger("jobfleet.backends.submission")


def submit_tagged(
    backend: BatchBackend,
    script: Path,
    *,
    unit: Job | None = None,
    array: ArrayChunk | None = None,
) -> str:
    """Submit ``script`` (for ``unit`` or ``array``) with retries; the native id it got."""
    tag = uuid.uuid4().hex[:16]
    argv = backend.submit_command(script, tag=tag, unit=unit, array=array)
    if backend.on_submitting is not None:  # the store notes the tag before the scheduler sees it
        units = list(array.units) if array is not None else [unit] if unit is not None else []
        backend.on_submitting(tag, units, array.offset if array is not None else None)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, CommandError) and e.transient),
        stop=tenacity.stop_after_attempt(max(1, backend.submit_attempts)),
        wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=20),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    # The failed try may still have reached the scheduler.
                    found = find_tagged(backend, tag)
                    if found is not None:
                        log.warning("%s: an earlier try did get through as %s", script, found)
                        return found
                result = backend.run(argv, attempts=1)
    except CommandError as err:
        raise BackendError(f"submitting {script} failed: {err}") from err
    return backend.job_id_from_submit_output(result.stdout)


def find_tagged(backend: BatchBackend, tag: str) -> str | None:
    """The submission with this tag: in the queue, else among finished jobs."""
    lookups = (
        (backend.tag_query_command, backend.parse_tag_query_output),
        (backend.tag_history_command, backend.parse_tag_history_output),
    )
    for build, parse in lookups:
        argv = build(tag)
        found = None if argv is None else parse(backend.run(argv).stdout, tag)
        if found is not None:
            return found
    return None


def wait_for_room(backend: BatchBackend, count: int) -> None:
    """Block until ``count`` more jobs fit under the backend's ``global_job_limit``."""
    argv = backend.active_count_command()
    if argv is None or not backend.global_job_limit:
        return
    while (
        active := backend.parse_active_count(backend.run(argv).stdout)
    ) + count > backend.global_job_limit:
        log.info(
            "%d jobs active, limit %d: waiting %.0f s before submitting %d more",
            active, backend.global_job_limit, backend.sleep_between_submission_checks, count,
        )  # fmt: skip
        time.sleep(backend.sleep_between_submission_checks)

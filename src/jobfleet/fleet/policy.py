"""A job's retry policy, and where it is kept in the store.

The store has a column for ``max_retries`` but none for
``max_failed_fraction``, so that one travels inside the job's backend options
under the reserved key :data:`POLICY_KEY`; :func:`driver_options` strips it
again before a driver sees the options. Keep all knowledge of that key here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobfleet.errors import SpecError
from jobfleet.store import JobRecord

__all__ = ["POLICY_KEY", "RetryPolicy", "driver_options", "policy_of", "stored_options"]

log = logging.getLogger("jobfleet.fleet.policy")

POLICY_KEY = "__jobfleet_policy__"


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


def stored_options(options: Mapping[str, Any], policy: RetryPolicy) -> dict[str, Any]:
    """The backend options to store for a job: the driver's plus the policy."""
    return {**options, POLICY_KEY: {"max_failed_fraction": policy.max_failed_fraction}}


def driver_options(record: JobRecord) -> dict[str, Any]:
    """A stored job's backend options as its driver expects them."""
    return {k: v for k, v in record.backend_options.items() if k != POLICY_KEY}


def policy_of(record: JobRecord) -> RetryPolicy:
    """The retry policy a stored job was submitted with."""
    extra = record.backend_options.get(POLICY_KEY)
    fraction = 1.0
    if isinstance(extra, Mapping):
        value = extra.get("max_failed_fraction", 1.0)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
            fraction = float(value)
        else:
            log.warning("job %s: stored max_failed_fraction %r ignored", record.name, value)
    return RetryPolicy(max_retries=record.max_retries, max_failed_fraction=fraction)

"""Store-driven orchestration: drivers per scheduler, the local runner, submit/watch/retry.

Drivers (the local one too) are imported when a backend name is first used.
"""

from jobfleet.fleet.api import (
    cancel_job,
    ensure_runner,
    fleet_for,
    remove_job,
    resubmit_job,
    submit_job,
    watch_step,
)
from jobfleet.fleet.driver import (
    Driver,
    UnknownBackendError,
    driver_availability,
    driver_names,
    get_driver,
    register_driver,
)
from jobfleet.fleet.orchestrator import Fleet, JobActiveError, JobBusyError
from jobfleet.fleet.policy import RetryPolicy
from jobfleet.fleet.progress import JobProgress, job_status

__all__ = [
    "Driver",
    "Fleet",
    "JobActiveError",
    "JobBusyError",
    "JobProgress",
    "RetryPolicy",
    "UnknownBackendError",
    "cancel_job",
    "driver_availability",
    "driver_names",
    "ensure_runner",
    "fleet_for",
    "get_driver",
    "job_status",
    "register_driver",
    "remove_job",
    "resubmit_job",
    "submit_job",
    "watch_step",
]

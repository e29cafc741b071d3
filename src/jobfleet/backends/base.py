"""What every backend shares: turning jobs into units of work, and ending them.

A *unit* is what a scheduler runs once: a subjob, or a job without subjobs.
``Backend.submit`` accepts a job, a subjob or a list of them (as caf.backends
did), splits jobs that have a splitter, checks every job before writing
anything, prepares each unit's working directory and hands the units to the
concrete backend's :meth:`Backend._submit_units`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from jobfleet.errors import BackendError
from jobfleet.job import Job, SubJob
from jobfleet.status import JobStatus, reason_for_exit_code
from jobfleet.workdir import (
    EXIT_CODE_FILE,
    SUBMIT_SCRIPT,
    check_job,
    collect_outputs,
    prepare,
    render_wrapper,
)

__all__ = ["Backend", "owner_of", "units_of"]

log = logging.getLogger("jobfleet.backends")

JobLike = Job | SubJob


def owner_of(unit: Job) -> Job:
    """The job that holds a unit's description: its parent for a subjob, else itself."""
    return unit.parent if isinstance(unit, SubJob) else unit


def units_of(items: JobLike | Iterable[JobLike]) -> list[Job]:
    """Flatten jobs into units: a job with subjobs stands for its subjobs."""
    todo: list[Job] = [items] if isinstance(items, Job) else list(items)
    units: list[Job] = []
    for item in todo:
        if not isinstance(item, Job):
            raise TypeError(f"expected a Job or SubJob, got {type(item).__name__}")
        if item.subjobs:
            units.extend(item.subjobs[i] for i in sorted(item.subjobs))
        else:
            units.append(item)
    return units


class Backend(ABC):
    """Base class of all backends.

    For ``backend_args`` the job's own values win over the backend's, which win
    over the backend class's ``default_backend_args``.
    """

    #: Name used on the command line and in the store.
    name: ClassVar[str] = ""
    submit_script = SUBMIT_SCRIPT
    exit_code_file = EXIT_CODE_FILE
    default_backend_args: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        self.backend_args: dict[str, Any] = {**self.default_backend_args, **(backend_args or {})}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def job_backend_args(self, job: Job) -> dict[str, Any]:
        return {**self.backend_args, **owner_of(job).backend_args}

    # -- submission --------------------------------------------------------------------------

    def submit(self, job: JobLike | Sequence[JobLike]) -> None:
        """Submit a job, a subjob, or a list of them; returns once they are handed over.

        A job with a splitter is split first. Of a job with subjobs, only the
        subjobs that were never submitted (status ``init``) are sent, so a job
        can be submitted again after an interruption.
        """
        items: list[JobLike] = [job] if isinstance(job, Job) else list(job)
        units: list[Job] = []
        parents: list[Job] = []
        for item in items:
            if isinstance(item, SubJob):
                units.append(item)
                continue
            if not isinstance(item, Job):
                raise TypeError(f"{self!r}.submit() takes Job or SubJob objects, not {item!r}")
            item.check_input_data_files()
            item.split()
            if item.subjobs:
                parents.append(item)
                fresh = sorted(i for i, sj in item.subjobs.items() if sj.status is JobStatus.init)
                units.extend(item.subjobs[i] for i in fresh)
            else:
                units.append(item)
        owners = {id(owner_of(u)): owner_of(u) for u in units}.values()
        for owner in owners:
            self._apply_environment(owner)
            check_job(owner)
            self.check_job(owner)
        for owner in owners:
            try:
                owner.working_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise BackendError(
                    f"cannot create working directory {owner.working_dir}: {err.strerror}"
                ) from None
        if units:
            self._submit_units(units)
            log.info("%r: submitted %d units", self, len(units))
        for parent in parents:
            if parent.result is None:
                parent.result = self._parent_result(parent)

    def _apply_environment(self, job: Job) -> None:
        """Backend-level ``forward_env`` / ``set_env``, captured now, into the job's setup."""
        if self.backend_args.get("set_env"):
            job.set_environment(self.backend_args["set_env"])
        if self.backend_args.get("forward_env"):
            job.forward_environment(self.backend_args["forward_env"])

    def check_job(self, job: Job) -> None:  # noqa: B027 -- optional hook, nothing to check here
        """Backend-specific checks of a job before anything is written (resources, options)."""

    def render_script(self, unit: Job) -> str:
        """The wrapper script for one unit (batch backends add their directives)."""
        return render_wrapper(unit)

    def prepare(self, unit: Job) -> None:
        """Write the unit's working directory: sandbox, input list, wrapper script."""
        prepare(unit, self.render_script(unit))

    @abstractmethod
    def _submit_units(self, units: list[Job]) -> None:
        """Prepare units (:meth:`prepare`) and hand them to the scheduler.

        Sets each unit's ``result`` and status. The owners' working directories
        exist and every job has passed :meth:`check_job` when this is called.
        """

    @abstractmethod
    def _parent_result(self, parent: Job) -> Any:
        """The ``result`` of a job with subjobs: updates all of them at once."""

    # -- control -----------------------------------------------------------------------------

    @abstractmethod
    def cancel(self, job: JobLike | Sequence[JobLike]) -> None:
        """Cancel what ``job`` holds that is still queued or running; it ends ``failed``."""

    # -- ending ------------------------------------------------------------------------------

    def _finish(self, unit: Job, exit_code: int | None, reason: str | None = None) -> None:
        """End a unit: ``completed`` for exit code 0 (after collecting outputs), else ``failed``."""
        if unit.status.is_final:
            return
        if exit_code == 0 and reason is None:
            try:
                collect_outputs(unit)
            except OSError as err:
                unit.set_status(JobStatus.failed, exit_code=0, reason=f"output collection: {err}")
                return
            unit.set_status(JobStatus.completed, exit_code=0)
        else:
            unit.set_status(
                JobStatus.failed,
                exit_code=exit_code,
                reason=reason or reason_for_exit_code(exit_code),
            )

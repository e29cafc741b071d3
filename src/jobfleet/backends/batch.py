"""The shared machinery of every batch scheduler backend.

A scheduler module (Slurm, HTCondor, ...) only renders text, builds argument
lists and parses output with pure functions; :class:`BatchBackend` does the
rest once for all of them: preparing working directories, grouping subjobs
into native arrays, running commands (through :func:`~jobfleet.commands.run_command`),
recording native ids, polling with one status query for all active units,
resolving units that left the queue, cancelling, and holding submission back
under a global job limit. The values the pure functions exchange are in
:mod:`jobfleet.backends.native`; submitting a script without ever sending it
twice is :mod:`jobfleet.backends.submission`.

The contract a scheduler backend fills (all methods pure unless noted):

``state_map`` / :meth:`parse_status_output`
    The scheduler's states mapped to :class:`~jobfleet.status.JobStatus`.
:meth:`max_array_size`
    Largest array index + 1 (may ask the scheduler once and cache it); ``0``
    or ``1`` when the scheduler has no arrays.
:meth:`directives`, :meth:`render_array_script`
    Scheduler directives for one unit, and the script an array runs.
:meth:`submit_command` / :meth:`job_id_from_submit_output`
    Argv for submitting a script; the native id in the submit command's output.
:meth:`array_task_id` (or :meth:`array_task_ids` for a whole array)
    The native id of one array task. ``array_index_base`` is the first index
    the scheduler allows (0 for Slurm, 1 for LSF or Grid Engine).
:meth:`submission_file`, ``array_file_name``
    Where the file handed to the submit command is written: by default the
    unit's wrapper script, and ``array_<first>-<last>.sh`` in the job's working
    directory holding :meth:`render_array_script`'s text; a scheduler that
    submits a description rather than a script (HTCondor, DIRAC) writes its
    own file here.
:meth:`status_command` / :meth:`parse_status_output`
    One query for many native ids; ``{native_id: NativeState}``.
:meth:`history_command` / :meth:`parse_history_output`
    Optional: for ids that left the queue (``sacct``, ``condor_history``, ...).
:meth:`cancel_command`
    Argv cancelling many native ids at once.
:meth:`tag_query_command` / :meth:`parse_tag_query_output`
    Optional: find a submission by its unique tag, so a submission whose
    command timed out is never sent twice.
:meth:`tag_history_command` / :meth:`parse_tag_history_output`
    Optional: the same among finished jobs, for a scheduler whose queue query
    forgets them at once (a short job may end before the lookup).
:meth:`active_count_command` / :meth:`parse_active_count`
    Optional: how many of this user's jobs are queued or running.
"""

from __future__ import annotations

import logging
import re
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jobfleet.backends.base import Backend, JobLike, owner_of, units_of
from jobfleet.backends.native import ArrayChunk, NativeState, array_chunks, compress_indices
from jobfleet.backends.submission import submit_tagged, wait_for_room
from jobfleet.commands import CommandResult, run_command
from jobfleet.errors import CommandError
from jobfleet.job import Job, SubJob
from jobfleet.resources import RESOURCE_KEYS, Resources, resources_from_args, scheduler_name
from jobfleet.status import JobStatus, reason_for_exit_code
from jobfleet.templating import render
from jobfleet.workdir import prepare, read_exit_code, render_wrapper

__all__ = ["ArrayChunk", "BatchBackend", "BatchResult", "NativeState", "compress_indices"]

log = logging.getLogger("jobfleet.backends.batch")


class BatchResult:
    """``job.result`` of a batch-submitted job: one batched poll updates everything."""

    def __init__(self, backend: BatchBackend, job: Job) -> None:
        self.backend = backend
        self.job = job

    def update_status(self) -> None:
        self.backend.poll()

    def ready(self) -> bool:
        return self.job.status.is_final


class BatchBackend(Backend):
    """Base of the batch scheduler backends (see the module docstring for the contract)."""

    state_map: ClassVar[Mapping[str, JobStatus]] = {}
    #: Output of a failed command that means "try again later".
    transient_errors: ClassVar[re.Pattern[str]] = re.compile(
        r"timed out|temporarily|try again|connection refused|unable to contact", re.I
    )
    #: Output of a failed status query that only means "none of these ids is known".
    unknown_ids_error: ClassVar[re.Pattern[str] | None] = None
    default_global_job_limit: ClassVar[int] = 10_000
    default_sleep_between_submission_checks: ClassVar[float] = 30.0
    #: First array index the scheduler accepts.
    array_index_base: ClassVar[int] = 0
    #: File name (in the job's working directory) of an array's submission file.
    array_file_name: ClassVar[str] = "array_{label}.sh"
    #: Backend options that change how units are polled, not only how they are submitted.
    #: A watcher polls jobs whose values differ with separate backend objects.
    poll_options: ClassVar[frozenset[str]] = frozenset(
        {"exit_code_grace", "command_timeout", "retry_scale"}
    )
    #: Every option this backend reads; a spec naming another one is refused (a typo).
    known_options: ClassVar[frozenset[str]] = frozenset(
        {
            "global_job_limit", "sleep_between_submission_checks", "exit_code_grace",
            "min_poll_interval", "command_timeout", "submit_attempts", "retry_scale",
            "inherit_env", "forward_env", "set_env", "resources", *RESOURCE_KEYS,
        }
    )  # fmt: skip

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(backend_args=backend_args)
        self.global_job_limit = int(
            self.backend_args.get("global_job_limit", self.default_global_job_limit)
        )
        self.sleep_between_submission_checks = float(
            self.backend_args.get(
                "sleep_between_submission_checks", self.default_sleep_between_submission_checks
            )
        )
        #: Seconds to wait for the exit code file of a unit the scheduler no longer knows.
        self.exit_code_grace = float(self.backend_args.get("exit_code_grace", 300.0))
        #: Polls closer together than this reuse the last answer (many jobs, one query).
        self.min_poll_interval = float(self.backend_args.get("min_poll_interval", 1.0))
        self.command_timeout = float(self.backend_args.get("command_timeout", 60.0))
        self.submit_attempts = int(self.backend_args.get("submit_attempts", 4))
        #: ``{"walltime": 2.0, "memory": 1.5}``: a unit that failed for a timeout (or
        #: out of memory) gets that much more on its next submission. Off by default.
        self.retry_scale: dict[str, float] = {
            str(k): float(v) for k, v in dict(self.backend_args.get("retry_scale") or {}).items()
        }
        self._active: dict[str, Job] = {}
        self._missing_since: dict[str, float] = {}
        self._last_poll = float("-inf")
        self._history_failed = False  # warned once that the history query fails
        #: Called with ``(owner, [(unit, native_id), ...])`` right after each submission call.
        self.on_submitted: Any = None
        #: Called with ``(tag, units, array offset or None)`` right before each submission call.
        self.on_submitting: Any = None

    # -- the contract --------------------------------------------------------------------------

    @abstractmethod
    def max_array_size(self) -> int: ...

    @abstractmethod
    def directives(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]: ...

    def render_array_script(self, chunk: ArrayChunk) -> str:
        """The script an array runs: task ``i`` runs its subjob's wrapper in its own directory."""
        return render(
            "array.sh.j2",
            directives=self.directives(chunk.owner, array=chunk),
            label=chunk.label,
            name=chunk.owner.name,
            task_var=self.array_task_variable(),
            offset=chunk.offset,
            workdir=chunk.owner.working_dir,
            submit_script=self.submit_script,
        )

    def array_task_variable(self) -> str:
        """The environment variable that holds a running array task's index."""
        raise NotImplementedError(f"{type(self).__name__} has no array task variable")

    def job_name(self, job: Job, resources: Resources, array: ArrayChunk | None = None) -> str:
        """The scheduler's name for a unit or array: ``job_name``, else the (sanitised) job's."""
        return resources.job_name or scheduler_name(owner_of(job).name if array else job.name)

    @abstractmethod
    def submit_command(
        self, script: Path, *, tag: str, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> list[str]: ...

    @abstractmethod
    def job_id_from_submit_output(self, stdout: str) -> str: ...

    @abstractmethod
    def array_task_id(self, array_id: str, index: int) -> str: ...

    @abstractmethod
    def status_command(self, native_ids: Sequence[str]) -> list[str]: ...

    @abstractmethod
    def parse_status_output(self, stdout: str) -> dict[str, NativeState]: ...

    @abstractmethod
    def cancel_command(self, native_ids: Sequence[str]) -> list[str]: ...

    def array_task_ids(self, array_id: str, chunk: ArrayChunk) -> list[str]:
        """Native ids of the chunk's units, in order."""
        return [self.array_task_id(array_id, index) for index in chunk.indices]

    def submission_file(self, unit: Job) -> Path:
        """Write what the submit command takes for one unit; the wrapper script by default."""
        self.prepare(unit)
        return unit.working_dir / self.submit_script

    def history_command(self, native_ids: Sequence[str]) -> list[str] | None:
        return None

    def parse_history_output(self, stdout: str) -> dict[str, NativeState]:
        return {}

    def tag_query_command(self, tag: str) -> list[str] | None:
        return None

    def parse_tag_query_output(self, stdout: str, tag: str) -> str | None:
        return None

    def tag_history_command(self, tag: str) -> list[str] | None:
        return None

    def parse_tag_history_output(self, stdout: str, tag: str) -> str | None:
        return None

    def active_count_command(self) -> list[str] | None:
        return None

    def parse_active_count(self, stdout: str) -> int:
        return len([line for line in stdout.splitlines() if line.strip()])

    def inherits_env(self, *, unit: Job | None = None, array: ArrayChunk | None = None) -> bool:
        """Whether the submitting environment goes with the job (``inherit_env``, default no)."""
        owner = array.owner if array is not None else unit
        return owner is not None and bool(self.job_backend_args(owner).get("inherit_env"))

    def resources_for(self, job: Job, *, array: ArrayChunk | None = None) -> Resources:
        """The resources of a unit (or of an array's units), with its retry scaling applied."""
        unit = array.units[0] if array is not None else job
        return resources_from_args(self.job_backend_args(job), unit.resource_scale)

    # -- running commands ----------------------------------------------------------------------

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        kwargs.setdefault("timeout", self.command_timeout)
        kwargs.setdefault("transient", self.transient_errors)
        return run_command(argv, **kwargs)

    # -- submission ----------------------------------------------------------------------------

    def render_script(self, unit: Job) -> str:
        return render_wrapper(unit, self.directives(unit))

    def _submit_units(self, units: list[Job]) -> None:
        # One array per job and resource scale: units retried with more walltime or
        # memory cannot share an array with the others.
        groups: dict[tuple[int, tuple[tuple[str, float], ...]], tuple[Job, list[Job]]] = {}
        for unit in units:
            owner = owner_of(unit)
            key = (id(owner), tuple(sorted(unit.resource_scale.items())))
            groups.setdefault(key, (owner, []))[1].append(unit)
        for owner, group in groups.values():
            subjobs = [u for u in group if isinstance(u, SubJob)]
            if subjobs and self.max_array_size() > 1:
                for chunk in self._chunks(owner, subjobs):
                    self._submit_array(chunk)
            else:
                for unit in group:
                    self._submit_single(unit)

    def _chunks(self, owner: Job, subjobs: list[SubJob]) -> list[ArrayChunk]:
        """Arrays whose indices fit the scheduler's range, at most the global limit each."""
        width = self.max_array_size() - self.array_index_base
        return array_chunks(owner, subjobs, width, self.global_job_limit, self.array_index_base)

    def _submit_single(self, unit: Job) -> None:
        native = self._submit_script(self.submission_file(unit), unit=unit)
        self._record(owner_of(unit), [(unit, native)])

    def _submit_array(self, chunk: ArrayChunk) -> None:
        for unit in chunk.units:
            prepare(unit, render_wrapper(unit))
        script = chunk.owner.working_dir / self.array_file_name.format(label=chunk.label)
        script.write_text(self.render_array_script(chunk), encoding="utf-8")
        array_id = self._submit_script(script, array=chunk)
        pairs: list[tuple[Job, str]] = list(
            zip(chunk.units, self.array_task_ids(array_id, chunk), strict=True)
        )
        self._record(chunk.owner, pairs)

    def _submit_script(
        self, script: Path, *, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> str:
        wait_for_room(self, len(array.units) if array else 1)
        return submit_tagged(self, script, unit=unit, array=array)

    def _record(self, owner: Job, pairs: list[tuple[Job, str]]) -> None:
        for unit, native in pairs:
            unit.native_id = native
            unit.result = BatchResult(self, unit)
            unit.attempt += 1
            unit.set_status(JobStatus.submitted, force=unit.status.is_final)
            self._active[native] = unit
        log.info("%r: %d units of %s submitted as %s", self, len(pairs), owner.name, pairs[0][1])
        if self.on_submitted is not None:
            self.on_submitted(owner, pairs)

    def _parent_result(self, parent: Job) -> BatchResult:
        return BatchResult(self, parent)

    def follow(self, units: Mapping[str, Job]) -> None:
        """Follow exactly these units (native id -> unit) from now on; others are dropped."""
        self._active = dict(units)
        for native_id in [n for n in self._missing_since if n not in self._active]:
            del self._missing_since[native_id]

    def adopt(self, unit: Job, native_id: str) -> None:
        """Follow a unit submitted earlier (e.g. by another process, known from the store)."""
        unit.native_id = native_id
        unit.result = BatchResult(self, unit)
        unit.set_status(JobStatus.submitted)
        self._active[native_id] = unit

    # -- following -----------------------------------------------------------------------------

    def poll(self, *, force: bool = False) -> list[Job]:
        """Update every active unit with one status query (plus one history query for
        units that left the queue). Returns the units whose status changed."""
        now = time.monotonic()
        if not self._active or (not force and now - self._last_poll < self.min_poll_interval):
            return []
        self._last_poll = now
        active = dict(self._active)
        states = self._query(self.status_command, self.parse_status_output, list(active))
        gone = [nid for nid in active if nid not in states]
        if gone:
            history = self.history_command(gone)
            if history is not None:
                try:
                    found = self._query(lambda _ids: history, self.parse_history_output, gone)
                except CommandError as err:
                    # No accounting (disabled, down): the exit code files still settle
                    # these units, so the queue's answer is not thrown away.
                    level = logging.DEBUG if self._history_failed else logging.WARNING
                    self._history_failed = True
                    log.log(level, "history query failed; using exit code files: %s", err)
                    found = {}
                states.update({k: v for k, v in found.items() if v.status.is_final})
        changed = []
        # A backend with its own _apply (hold reasons, ...) sees every state.
        plain = type(self)._apply is BatchBackend._apply
        for nid, unit in active.items():
            before = unit.status
            state = states.get(nid)
            if plain and state is not None and state.status is before and not before.is_final:
                # Still queued or running as last time: the common case, nothing to do.
                if self._missing_since:
                    self._missing_since.pop(nid, None)
                continue
            if state is None:
                self._resolve_missing(nid, unit, now)
            else:
                self._missing_since.pop(nid, None)
                self._apply(unit, state)
            if unit.status is not before:
                changed.append(unit)
            if unit.status.is_final:
                self._active.pop(nid, None)
                self._missing_since.pop(nid, None)
        return changed

    def _query(self, build: Any, parse: Any, ids: list[str]) -> dict[str, NativeState]:
        try:
            result = self.run(build(ids))
        except CommandError as err:
            said = err.stderr + err.stdout
            if self.unknown_ids_error is not None and self.unknown_ids_error.search(said):
                return {}
            raise
        states: dict[str, NativeState] = parse(result.stdout)
        return states

    def _finish(self, unit: Job, exit_code: int | None, reason: str | None = None) -> None:
        if unit.status.is_final:
            return
        super()._finish(unit, exit_code, reason)
        resource = {"timeout": "walltime", "out of memory": "memory"}.get(unit.reason or "")
        if resource and resource in self.retry_scale and unit.status is JobStatus.failed:
            factor = unit.resource_scale.get(resource, 1.0) * self.retry_scale[resource]
            unit.resource_scale[resource] = factor
            log.info(
                "%s failed (%s): a retry gets %.3gx the %s",
                unit.name,
                unit.reason,
                factor,
                resource,
            )

    def _apply(self, unit: Job, state: NativeState) -> None:
        if not state.status.is_final:
            unit.set_status(state.status, force=state.requeued and not unit.status.is_final)
            return
        exit_code = read_exit_code(unit.working_dir)
        if exit_code is None:
            exit_code = state.exit_code
        if state.status is JobStatus.completed:
            self._finish(unit, 0 if exit_code is None else exit_code)
        else:
            reason = state.reason or reason_for_exit_code(exit_code) or state.state.lower()
            self._finish(unit, exit_code, reason)

    def _resolve_missing(self, native_id: str, unit: Job, now: float) -> None:
        """The scheduler forgot the unit: its exit code file decides, after a grace period."""
        exit_code = read_exit_code(unit.working_dir)
        if exit_code is not None:
            self._finish(unit, exit_code)
            return
        first_missed = self._missing_since.setdefault(native_id, now)
        waited = now - first_missed
        if waited >= self.exit_code_grace:
            self._finish(
                unit, None, f"lost: no exit code file {waited:.0f} s after leaving the queue"
            )
        else:
            log.debug(
                "%s left the queue; waiting for its exit code file (%.0f s)", unit.name, waited
            )

    # -- cancelling ----------------------------------------------------------------------------

    def cancel(self, job: JobLike | Sequence[JobLike]) -> None:
        targets = [u for u in units_of(job) if not u.status.is_final and u.native_id]
        if not targets:
            return
        ids = [u.native_id for u in targets if u.native_id]
        self.run(self.cancel_command(ids))
        for unit in targets:
            self._finish(unit, None, "cancelled")
            if unit.native_id:
                self._active.pop(unit.native_id, None)
        log.info("%r: cancelled %d units", self, len(targets))

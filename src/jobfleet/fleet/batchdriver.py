"""One driver for every batch scheduler: a :class:`~jobfleet.backends.batch.BatchBackend`
seen through the store-driven :class:`~jobfleet.fleet.driver.Driver` contract.

The backend does the scheduler work (arrays, one status query per poll,
history, exit code files); this adapter only translates between store records
and job objects, so adding a scheduler needs no driver code of its own.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from jobfleet.backends.base import owner_of
from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.native import ArrayChunk
from jobfleet.backends.submission import find_tagged
from jobfleet.errors import BackendError, CommandError
from jobfleet.fleet.driver import (
    BackendOptionsError,
    JobCache,
    NoteSubmitting,
    RecordSubmitted,
    subjob_id_of,
    unit_of,
)
from jobfleet.job import Job, SubJob
from jobfleet.status import JobStatus
from jobfleet.store import JobRecord, StatusUpdate, SubjobRecord
from jobfleet.workdir import EXIT_CODE_FILE

__all__ = ["BatchDriver"]

log = logging.getLogger("jobfleet.fleet.batchdriver")

_STATUSES = {s.value: s for s in JobStatus}  # a dict lookup, not an enum call per unit
#: Up to this many units left, a watcher looks for their exit code files between polls.
_EARLY_WAKE_UNITS = 100
_EARLY_WAKE_STEP = 0.2
#: After an early wake the scheduler may still list the units for a moment: poll again soon.
_FOLLOW_UP = 1.0


class BatchDriver:
    """Base of the batch drivers; a subclass names its backend class and probe commands."""

    name: ClassVar[str] = ""
    backend_class: ClassVar[type[BatchBackend]]
    #: Commands that must exist for the driver to work here.
    required_commands: ClassVar[tuple[str, ...]] = ()
    #: A cheap command that only succeeds when the scheduler answers.
    probe_command: ClassVar[tuple[str, ...]] = ()
    default_poll_interval: ClassVar[float] = 5.0

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = dict(options)
        unknown = sorted(set(opts) - self.backend_class.known_options - {"poll_interval"})
        if unknown:
            known = sorted(self.backend_class.known_options | {"poll_interval"})
            raise BackendOptionsError(
                f"backend '{self.name}': unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(known)})"
            )
        try:
            self.poll_interval = float(opts.pop("poll_interval", self.default_poll_interval))
            opts.setdefault("min_poll_interval", 0)  # the orchestration paces the polls
            self.backend = self.backend_class(backend_args=opts)
        except (TypeError, ValueError) as err:
            raise BackendOptionsError(f"backend options for {self.name}: {err}") from None
        self._jobs = JobCache()
        # native id -> (job id, subjob id, unit), as followed at the last poll
        self._units: dict[str, tuple[int, int, Job]] = {}
        self._woke_for: frozenset[str] = frozenset()
        # Retry scaling learnt while polling, by (job name, subjob id): the units the
        # orchestration resubmits are fresh objects that know nothing of it.
        self._scales: dict[tuple[str, int], dict[str, float]] = {}

    @property
    def poll_options(self) -> frozenset[str]:
        """Options that change polling (see :attr:`BatchBackend.poll_options`)."""
        return self.backend_class.poll_options

    def submit(
        self,
        job: Job,
        units: Sequence[Job],
        record: RecordSubmitted,
        note: NoteSubmitting | None = None,
    ) -> None:
        def on_submitted(owner: Job, pairs: list[tuple[Job, str]]) -> None:
            record([(subjob_id_of(unit), native_id) for unit, native_id in pairs])

        def on_submitting(tag: str, tagged: list[Job], offset: int | None) -> None:
            if note is not None:
                # An array's offset goes with its tag: it maps task indices back to subjobs.
                noted = tag if offset is None else f"{tag} {offset}"
                note([subjob_id_of(u) for u in tagged], noted)

        for unit in units:
            scale = self._scales.get((job.name, subjob_id_of(unit)))
            if scale:
                unit.resource_scale = dict(scale)

        self.backend.on_submitted = on_submitted
        self.backend.on_submitting = on_submitting
        try:
            self.backend.submit(list(units))
        finally:
            self.backend.on_submitted = self.backend.on_submitting = None

    def find_submitted(self, job: Job, noted: Mapping[str, Sequence[int]]) -> list[tuple[int, str]]:
        """Of the calls noted before a crash (``{tag: subjob ids}``), those the scheduler
        accepted: ``(subjob_id, native_id)`` pairs. Raises if the scheduler cannot be asked."""
        found: list[tuple[int, str]] = []
        for noted_tag, ids in noted.items():
            tag, _, offset = noted_tag.partition(" ")
            try:
                native = find_tagged(self.backend, tag)
            except CommandError as err:
                raise BackendError(
                    f"job {job.name!r}: cannot tell whether subjobs {ids[0]}-{ids[-1]} were "
                    f"submitted before the last submission stopped ({err}); not sending them "
                    "again blindly: try again when the scheduler answers"
                ) from err
            if native is None:
                continue
            ordered = sorted(ids)
            if offset:
                units = (unit_of(job, subjob_id) for subjob_id in ordered)
                subjobs = tuple(u for u in units if isinstance(u, SubJob))
                chunk = ArrayChunk(job, subjobs, int(offset))
                natives = self.backend.array_task_ids(native, chunk)
            else:
                natives = [native]
            found += zip(ordered, natives, strict=True)
        return found

    def render_script(self, unit: Job) -> str:
        return self.backend.render_script(unit)

    def poll(
        self, job_records: Mapping[int, JobRecord], active: Sequence[SubjobRecord]
    ) -> list[StatusUpdate]:
        units: dict[str, Job] = {}
        job_of: dict[int, int] = {}
        known, followed = self._units, {}
        for rec in active:
            native_id = rec.native_id
            if not native_id:
                continue
            # The unit followed last cycle under this native id, if it is the same
            # subjob: no lookup or rebuilding for the thousands that did not change.
            entry = known.get(native_id)
            if entry is not None and entry[:2] == (rec.job_id, rec.subjob_id):
                unit = entry[2]
            else:
                unit = self._jobs.unit(job_records[rec.job_id], rec.subjob_id)
                unit.native_id = native_id
            stored = _STATUSES[rec.status]
            if unit.status is not stored:  # another process may have moved it
                unit.set_status(stored, force=True)
            units[native_id] = unit
            followed[native_id] = (rec.job_id, rec.subjob_id, unit)
            job_of[id(unit)] = rec.job_id
        self._units = followed
        self.backend.follow(units)
        changed = self.backend.poll(force=True)
        for unit in changed:
            if unit.resource_scale:
                self._scales[(owner_of(unit).name, subjob_id_of(unit))] = dict(unit.resource_scale)
        return [
            StatusUpdate(job_of[id(u)], subjob_id_of(u), u.status.value, u.exit_code, u.reason)
            for u in changed
        ]

    def wait_for_change(self, timeout: float) -> None:
        """Sleep up to ``timeout`` s; less when every unit still followed has written its
        exit code file (all of them finished, the scheduler has not said so yet).

        Only while few units are left (a stat each per step), and once per set of
        units: after that, polls come every ``_FOLLOW_UP`` s until the scheduler agrees.
        """
        left = {n: e[2] for n, e in self._units.items() if not e[2].status.is_final}
        if not left or len(left) > _EARLY_WAKE_UNITS:
            time.sleep(timeout)
            return
        if frozenset(left) == self._woke_for:
            time.sleep(min(timeout, _FOLLOW_UP))
            return
        deadline = time.monotonic() + timeout
        while not all((u.working_dir / EXIT_CODE_FILE).exists() for u in left.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(_EARLY_WAKE_STEP, remaining))
        self._woke_for = frozenset(left)

    def cancel(self, job_records: Mapping[int, JobRecord], records: Sequence[SubjobRecord]) -> None:
        ids = [rec.native_id for rec in records if rec.native_id]
        if ids:
            self.backend.run(self.backend.cancel_command(ids))

    @classmethod
    def available(cls) -> tuple[bool, str]:
        missing = [cmd for cmd in cls.required_commands if shutil.which(cmd) is None]
        if missing:
            return False, f"command not found: {', '.join(missing)}"
        if cls.probe_command:
            try:
                cls.backend_class().run(list(cls.probe_command), attempts=1, timeout=15)
            except CommandError as err:
                return False, f"scheduler not answering: {err}"
        return True, ""

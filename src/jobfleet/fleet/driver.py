"""The contract between the store-driven orchestration and a scheduler, and the driver registry.

A *driver* is what the orchestration (:mod:`jobfleet.fleet.orchestrator`) talks
to for one backend name (``local``, ``slurm``, ...). It is built from a job's
backend options and holds no state the store does not also hold: any process
can build one, submit, poll or cancel, and another process can take over after
a crash. A *unit* is what a scheduler runs once: a subjob, or a job without
subjobs (stored with subjob id :data:`~jobfleet.store.WHOLE_JOB`).

The contract, which every driver implements (structurally, see :class:`Driver`):

``name: str``
    The backend name it is registered under.
``poll_interval: float``
    Seconds between two polls that make sense for this scheduler.
``submit(job, units, record, note=None)``
    Prepare each unit's working directory (:func:`jobfleet.workdir.prepare`)
    and hand the units to the scheduler. Right after EACH scheduler call
    returns, and before the next one, call ``record([(subjob_id, native_id),
    ...])`` with what that call submitted: it commits them to the store, so a
    crash can never lose a unit that the scheduler already has. Units not yet
    recorded when ``submit`` raises stay ``init`` and are submitted again by
    ``jobfleet submit --resume``. A driver whose scheduler can find a
    submission by a tag calls ``note(subjob_ids, tag)`` right BEFORE each
    call; see ``find_submitted``.
``poll(job_records, active)``
    ONE batched query for all ``active`` units (submitted or running, of every
    job in this store that uses this backend; ``job_records`` maps their job
    ids to the jobs). Return only changes, as
    :class:`~jobfleet.store.StatusUpdate`. A unit that completed has had its
    outputs collected (:func:`jobfleet.workdir.collect_outputs`) before it is
    reported ``completed``; a failure carries a short reason
    (:func:`jobfleet.status.reason_for_exit_code`).
``cancel(job_records, records)``
    Stop the given units, queued or running. The orchestration has already
    marked them ``failed`` with reason ``"cancelled"`` in the store (a final
    status is sticky, so whatever the scheduler reports afterwards cannot
    replace that reason); the driver only has to make sure they stop.
``available()`` (classmethod)
    ``(True, "")`` if the driver can work on this machine, else ``(False,
    why)``: command not found, daemon not answering, ...

Optional: ``render_script(unit) -> str``, the script the driver would write for
a unit (``jobfleet submit --dry-run`` shows it); without it the plain wrapper
(:func:`jobfleet.workdir.render_wrapper`) is shown. Optional too:
``know_job(record, job)``, given a job that this process built and stored, for a
driver that only reads units to poll it instead of rebuilding it from the store.
And ``find_submitted(job, noted) -> [(subjob_id, native_id), ...]``: given the
tags noted for units that are still ``init`` (``{tag: [subjob_id, ...]}``),
those the scheduler did accept (the process died before recording them); the
orchestration records them instead of submitting them again. It raises if the
scheduler cannot be asked: sending them blindly could run them twice.

Drivers register with :func:`register_driver`. The names in
:data:`KNOWN_DRIVER_NAMES` that are not registered yet are looked up lazily by
importing ``jobfleet.fleet.<name>`` (``localrunner`` for ``local``), a module
that calls ``register_driver`` when imported; if there is no such module the
backend is "not implemented yet". So a command that only reads the store
never imports a driver.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jobfleet.errors import BackendError, SpecError
from jobfleet.job import Job, SubJob
from jobfleet.store import WHOLE_JOB, JobRecord, StatusUpdate, SubjobRecord

__all__ = [
    "CANCELLED",
    "KNOWN_DRIVER_NAMES",
    "NOT_IMPLEMENTED",
    "BackendOptionsError",
    "Driver",
    "DriverFactory",
    "JobCache",
    "NoteSubmitting",
    "RecordSubmitted",
    "UnknownBackendError",
    "driver_availability",
    "driver_names",
    "get_driver",
    "is_registered",
    "needs_runner",
    "register_driver",
    "subjob_id_of",
    "unit_of",
]

log = logging.getLogger("jobfleet.fleet.driver")

#: Backend names jobfleet knows of, registered or not (yet).
KNOWN_DRIVER_NAMES = ("local", "slurm", "htcondor", "lsf", "pbs", "sge", "dirac")
#: Why a known but unregistered backend cannot be used.
NOT_IMPLEMENTED = "not implemented yet"
#: The reason a cancelled unit ends ``failed`` with; such units are never retried.
CANCELLED = "cancelled"

#: ``record`` callback handed to :meth:`Driver.submit`: commits ``(subjob_id, native_id)`` pairs.
RecordSubmitted = Callable[[Sequence[tuple[int, str]]], None]
#: ``note`` callback handed to :meth:`Driver.submit`: commits ``(subjob_ids, tag)`` before a call.
NoteSubmitting = Callable[[Sequence[int], str], None]


class UnknownBackendError(BackendError):
    """A backend name that is not known, or known but not implemented yet."""


class BackendOptionsError(SpecError):
    """Backend options that the driver does not accept (unknown key, bad value)."""


class Driver(Protocol):
    """One scheduler, as the orchestration sees it (see the module docstring for the contract)."""

    # Read-only properties, so a plain attribute and a ClassVar both satisfy them.
    @property
    def name(self) -> str:
        """The backend name the driver is registered under."""
        ...

    @property
    def poll_interval(self) -> float:
        """Seconds between two polls that make sense for this scheduler."""
        ...

    def submit(
        self,
        job: Job,
        units: Sequence[Job],
        record: RecordSubmitted,
        note: NoteSubmitting | None = None,
    ) -> None:
        """Prepare and hand ``units`` of ``job`` to the scheduler, recording each call's ids."""
        ...

    def poll(
        self, job_records: Mapping[int, JobRecord], active: Sequence[SubjobRecord]
    ) -> list[StatusUpdate]:
        """One batched query for all ``active`` units; only the changes."""
        ...

    def cancel(self, job_records: Mapping[int, JobRecord], records: Sequence[SubjobRecord]) -> None:
        """Make sure the given units stop (they are already marked cancelled in the store)."""
        ...

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this driver can work on this machine, and if not, why."""
        ...


class DriverFactory(Protocol):
    """What :func:`register_driver` takes: usually the driver class itself."""

    def __call__(self, options: Mapping[str, Any]) -> Driver: ...

    def available(self) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class _Registration:
    factory: DriverFactory
    needs_runner: bool


_REGISTRY: dict[str, _Registration] = {}


def register_driver(name: str, factory: DriverFactory, *, needs_runner: bool = False) -> None:
    """Make backend ``name`` usable; ``factory(options)`` builds its driver.

    ``needs_runner``: units only make progress while some process polls (the
    local driver launches processes from its poll), so ``jobfleet submit``
    starts a background ``jobfleet watch`` for such backends.
    """
    if name in _REGISTRY and _REGISTRY[name].factory is not factory:
        log.warning("driver %r registered again; the new factory replaces the old one", name)
    _REGISTRY[name] = _Registration(factory, needs_runner)


#: Modules registering a known backend whose name differs from the backend's.
_MODULE_OF = {"local": "localrunner"}


def _registration(name: str) -> _Registration | None:
    if name not in _REGISTRY and name in KNOWN_DRIVER_NAMES:
        module = f"jobfleet.fleet.{_MODULE_OF.get(name, name)}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    return _REGISTRY.get(name)


def is_registered(name: str) -> bool:
    """Whether a driver for backend ``name`` exists."""
    return _registration(name) is not None


def driver_names() -> list[str]:
    """Every backend name worth listing: the known ones first, then other registered ones."""
    extra = sorted(set(_REGISTRY) - set(KNOWN_DRIVER_NAMES))
    return [*KNOWN_DRIVER_NAMES, *extra]


def _require(name: str) -> _Registration:
    registration = _registration(name)
    if registration is not None:
        return registration
    if name in KNOWN_DRIVER_NAMES:
        raise UnknownBackendError(f"backend {name!r} is {NOT_IMPLEMENTED}")
    known = ", ".join(driver_names())
    raise UnknownBackendError(f"unknown backend {name!r} (known: {known})")


def get_driver(name: str, options: Mapping[str, Any] | None = None) -> Driver:
    """Build the driver of backend ``name`` from its options.

    Raises :class:`UnknownBackendError` for a name without driver and
    :class:`BackendOptionsError` for options the driver rejects.
    """
    return _require(name).factory(dict(options or {}))


def needs_runner(name: str) -> bool:
    """Whether backend ``name`` needs a process that keeps polling (see :func:`register_driver`)."""
    registration = _registration(name)
    return registration is not None and registration.needs_runner


def driver_availability(name: str) -> tuple[bool, str]:
    """``(usable, why not)`` for backend ``name``; never raises for a driver's own failure."""
    registration = _registration(name)
    if registration is None:
        return False, NOT_IMPLEMENTED if name in KNOWN_DRIVER_NAMES else "unknown backend"
    try:
        return registration.factory.available()
    except Exception as err:  # a broken probe must not break `jobfleet backends`
        log.debug("availability probe of %r failed", name, exc_info=True)
        return False, f"availability check failed: {err}"


# -- units -------------------------------------------------------------------------------------


def subjob_id_of(unit: Job) -> int:
    """The store's subjob id of a unit: its id for a subjob, WHOLE_JOB for a job without any."""
    return unit.id if isinstance(unit, SubJob) else WHOLE_JOB


def unit_of(job: Job, subjob_id: int) -> Job:
    """The unit of ``job`` that the store calls ``subjob_id``."""
    if subjob_id == WHOLE_JOB:
        return job
    try:
        return job.subjobs[subjob_id]
    except KeyError:
        raise BackendError(f"{job!r} has no subjob {subjob_id}") from None


class JobCache:
    """Job objects rebuilt from stored descriptions, kept so each poll does not re-validate them.

    Keyed by job id and creation time, so a deleted job whose id was reused (it
    is not, but a copied database might) never gets a stale object.
    """

    def __init__(self) -> None:
        self._jobs: dict[tuple[int, float], Job] = {}

    def job(self, record: JobRecord) -> Job:
        key = (record.id, record.created_at)
        job = self._jobs.get(key)
        if job is None:
            job = Job(record.name, job_dict=record.description)
            self._jobs[key] = job
        return job

    def unit(self, record: JobRecord, subjob_id: int) -> Job:
        return unit_of(self.job(record), subjob_id)

    def remember(self, record: JobRecord, job: Job) -> None:
        """Use ``job`` itself for ``record`` (it was stored from it), not a rebuilt copy."""
        self._jobs[(record.id, record.created_at)] = job

    def forget(self, job_id: int) -> None:
        for key in [k for k in self._jobs if k[0] == job_id]:
            del self._jobs[key]

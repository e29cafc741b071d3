"""The drivers a fleet polls with, kept for the fleet's life.

One per backend and set of poll options (usually one per backend): the local
driver keeps its child processes between polls, and a batch driver the units
it follows. Jobs the fleet itself stored are handed to the drivers that can
poll them as built (``know_job``), so they are not rebuilt from the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence

from jobfleet.fleet.driver import Driver, get_driver
from jobfleet.job import Job
from jobfleet.store import JobRecord, SubjobRecord

__all__ = ["PollDrivers", "PollOptions"]

#: The (name, JSON value) pairs of the options a driver polls with.
PollOptions = tuple[tuple[str, str], ...]


class PollDrivers:
    """A fleet's long-lived poll drivers, and which of them had units at the last poll."""

    def __init__(self) -> None:
        self._drivers: dict[tuple[str, PollOptions], Driver] = {}
        self._polled: set[tuple[str, PollOptions]] = set()
        self._built: dict[int, tuple[JobRecord, Job]] = {}

    def get(self, backend: str, options: PollOptions = ()) -> Driver:
        """The driver of ``backend`` polling with ``options``, built on first use."""
        key = (backend, options)
        driver = self._drivers.get(key)
        if driver is None:
            values = {name: json.loads(value) for name, value in options}
            self._drivers[key] = driver = get_driver(backend, values)
            for record, job in self._built.values():
                if record.backend == backend:
                    _share_job(driver, record, job)
        return driver

    def groups(
        self, backend: str, active: Sequence[SubjobRecord], job_records: Mapping[int, JobRecord]
    ) -> dict[PollOptions, list[SubjobRecord]]:
        """The active units grouped by the values of the options their driver polls with
        (``exit_code_grace``, ``hold_timeout``...), so a job's own values are honoured.
        These are the drivers that :meth:`pause` asks from now on."""
        names: frozenset[str] = getattr(self.get(backend), "poll_options", frozenset())
        keys: dict[int, PollOptions] = {}
        for job_id, record in job_records.items():
            chosen = {k: v for k, v in record.backend_options.items() if k in names}
            keys[job_id] = tuple((k, json.dumps(chosen[k], sort_keys=True)) for k in sorted(chosen))
        groups: dict[PollOptions, list[SubjobRecord]] = {}
        for unit in active:
            if unit.job_id in keys:
                groups.setdefault(keys[unit.job_id], []).append(unit)
        self._polled = {k for k in self._polled if k[0] != backend}
        self._polled |= {(backend, options) for options in groups}
        return groups

    def stored(self, record: JobRecord, job: Job, driver: Driver) -> None:
        """``job`` was just stored as ``record`` (``driver``: one built for it): hand it
        to the poll drivers of its backend, now and when they are built, if they can use it."""
        if not callable(getattr(driver, "know_job", None)):
            return
        self._built[record.id] = (record, job)
        for (backend, _), poll_driver in self._drivers.items():
            if backend == record.backend:
                _share_job(poll_driver, record, job)

    def forget(self, job_id: int) -> None:
        self._built.pop(job_id, None)

    def pause(self, seconds: float, backends: Collection[str]) -> None:
        """Wait ``seconds``, or less when a driver of ``backends`` that had units at the
        last poll learns of a change sooner (the local driver when a unit's process ends)."""
        waits = [
            getattr(self._drivers[key], "wait_for_change", None)
            for key in sorted(self._polled)
            if key[0] in backends
        ]
        wait = next((w for w in waits if w is not None), None)
        if wait is None:
            time.sleep(seconds)
        else:
            wait(seconds)

    def wake(self) -> None:
        """New units were recorded: a driver waiting with nothing running polls at once.

        Safe from another thread (a background submission calls it).
        """
        for driver in list(self._drivers.values()):
            wake = getattr(driver, "wake", None)
            if wake is not None:
                wake()

    def stop_launching(self) -> None:
        """Start nothing more (local: no new processes); polls still follow what runs."""
        for driver in self._drivers.values():
            stop = getattr(driver, "stop_launching", None)
            if stop is not None:
                stop()


def _share_job(driver: Driver, record: JobRecord, job: Job) -> None:
    know_job = getattr(driver, "know_job", None)
    if know_job is not None:
        know_job(record, job)

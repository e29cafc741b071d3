"""Turning one job into many subjobs.

A splitter looks at a :class:`~jobfleet.job.Job` (its input files) and creates
its subjobs; an optional :class:`ArgumentsGenerator` then hands each subjob an
argument tuple, in subjob-id order.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from itertools import count, islice
from typing import TYPE_CHECKING, Any

from jobfleet.errors import SplitterError

if TYPE_CHECKING:
    from jobfleet.job import Job, SubJob

__all__ = [
    "ARGUMENTS_SPLITTER_HARD_CAP",
    "ArgumentsGenerator",
    "ArgumentsSplitter",
    "MaxFilesSplitter",
    "MaxSubjobsSplitter",
    "SubjobSplitter",
    "range_arguments",
]

log = logging.getLogger("jobfleet.splitters")

#: Subjobs an :class:`ArgumentsSplitter` without ``max_subjobs`` creates at most.
#: It stops an endless generator from eating all memory; pass ``max_subjobs``
#: explicitly to go beyond it.
ARGUMENTS_SPLITTER_HARD_CAP = 100_000

ArgsGen = Generator[Any, "SubJob | None", None]


class ArgumentsGenerator:
    """A generator function plus the arguments to start it with.

    Keeping the function unstarted lets a splitter start a fresh generator every
    time it splits a job. The generator receives each subjob through ``send``
    and yields that subjob's argument tuple.
    """

    def __init__(self, generator_function: Callable[..., ArgsGen], *args: Any, **kwargs: Any):
        self.generator_function = generator_function
        self.args = args
        self.kwargs = kwargs

    @property
    def generator(self) -> ArgsGen:
        """A fresh generator, already advanced to its first ``yield``."""
        gen = self.generator_function(*self.args, **self.kwargs)
        gen.send(None)
        return gen

    def __repr__(self) -> str:
        return f"ArgumentsGenerator({getattr(self.generator_function, '__name__', '?')})"


def range_arguments(start: int = 0, stop: int | None = None, step: int = 1) -> ArgsGen:
    """Yield ``(start,)``, ``(start + step,)``, ... up to ``stop`` (excluded; ``None``: endless).

    Meant for :class:`ArgumentsGenerator`: the first ``yield`` only primes the
    generator, every later one answers a subjob sent in.
    """
    if step == 0:
        raise ValueError("range_arguments: step must not be 0")
    values: Iterator[int] = count(start, step)
    if stop is not None:
        values = iter(range(start, stop, step))
    yield None
    for value in values:
        yield (value,)


def _check_limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class SubjobSplitter(ABC):
    """Base class: creates the subjobs of a job, then assigns their arguments."""

    def __init__(self, *, arguments_generator: ArgumentsGenerator | None = None) -> None:
        self.arguments_generator = arguments_generator

    @abstractmethod
    def create_subjobs(self, job: Job) -> None:
        """Create the subjobs of ``job`` (through ``job.create_subjob``)."""

    def assign_arguments(self, job: Job) -> None:
        """Give every subjob, in id order, the next tuple of the arguments generator.

        A generator that runs out early leaves the remaining subjobs with ``()``.
        """
        if self.arguments_generator is None:
            log.debug(
                "%r has no arguments generator; subjobs of %r keep their arguments", self, job
            )
            return
        gen: ArgsGen | None = self.arguments_generator.generator
        for subjob in sorted(job.subjobs.values(), key=lambda sj: sj.id):
            args: Any = ()
            if gen is not None:
                try:
                    args = gen.send(subjob)
                except StopIteration:
                    log.warning(
                        "%r ran out of arguments at %r; it and later subjobs get no arguments",
                        self.arguments_generator,
                        subjob,
                    )
                    gen = None
                    args = ()
            subjob.args = list(args)

    def __repr__(self) -> str:
        return type(self).__name__


class MaxFilesSplitter(SubjobSplitter):
    """One subjob per ``max_files_per_subjob`` input files, in order."""

    def __init__(
        self,
        *,
        arguments_generator: ArgumentsGenerator | None = None,
        max_files_per_subjob: int = 1,
    ) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_files_per_subjob = _check_limit("max_files_per_subjob", max_files_per_subjob)

    def create_subjobs(self, job: Job) -> None:
        files = list(job.input_files)
        if not files:
            log.warning("%r: splitting by input files, but %r has none; no subjobs", self, job)
            return
        size = self.max_files_per_subjob
        created = 0
        for created, first in enumerate(range(0, len(files), size), start=1):
            job.create_subjob(created - 1, input_files=files[first : first + size])
        self.assign_arguments(job)
        log.info("%r created %d subjobs for %r", self, created, job)


class MaxSubjobsSplitter(SubjobSplitter):
    """At most ``max_subjobs`` subjobs, the input files shared out as evenly as possible.

    Earlier subjobs take the larger share: 11 files over 4 subjobs give 3, 3, 3, 2.
    """

    def __init__(
        self, *, arguments_generator: ArgumentsGenerator | None = None, max_subjobs: int = 1000
    ) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_subjobs = _check_limit("max_subjobs", max_subjobs)

    def create_subjobs(self, job: Job) -> None:
        files = list(job.input_files)
        if not files:
            log.warning("%r: splitting by input files, but %r has none; no subjobs", self, job)
            return
        remaining_slots = self.max_subjobs
        first = 0
        subjob_id = 0
        while first < len(files):
            take = math.ceil((len(files) - first) / remaining_slots)
            job.create_subjob(subjob_id, input_files=files[first : first + take])
            first += take
            subjob_id += 1
            remaining_slots -= 1
        self.assign_arguments(job)
        log.info("%r created %d subjobs for %r", self, subjob_id, job)


class ArgumentsSplitter(SubjobSplitter):
    """One subjob per tuple of the arguments generator; every subjob gets all input files.

    More tuples than ``max_subjobs`` is a :class:`SplitterError`. Without
    ``max_subjobs`` the limit is :data:`ARGUMENTS_SPLITTER_HARD_CAP`, so an
    endless generator fails fast instead of hanging.
    """

    def __init__(
        self,
        *,
        arguments_generator: ArgumentsGenerator | None = None,
        max_subjobs: int | None = None,
    ) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_subjobs = None if max_subjobs is None else _check_limit("max_subjobs", max_subjobs)

    def create_subjobs(self, job: Job) -> None:
        if self.arguments_generator is None:
            raise SplitterError(f"{self!r} for {job!r} needs an arguments_generator")
        from jobfleet.job import SubJob  # import here: job.py imports this module

        limit = ARGUMENTS_SPLITTER_HARD_CAP if self.max_subjobs is None else self.max_subjobs
        gen = self.arguments_generator.generator
        subjobs: list[SubJob] = []
        # Ask for one tuple more than the limit: a generator that yields exactly
        # `limit` tuples is fine, only a further one is an error.
        for subjob_id in islice(count(), limit + 1):
            subjob = SubJob(job, subjob_id, job.input_files)
            try:
                args = gen.send(subjob)
            except StopIteration:
                break
            if subjob_id == limit:
                which = "max_subjobs" if self.max_subjobs is not None else "hard cap"
                raise SplitterError(
                    f"{self!r} for {job!r}: the arguments generator yields more than "
                    f"{limit} tuples ({which}); raise max_subjobs or end the generator"
                )
            subjob.args = list(args)
            subjobs.append(subjob)
        for subjob in subjobs:
            job.add_subjob(subjob)
        log.info("%r created %d subjobs for %r", self, len(subjobs), job)

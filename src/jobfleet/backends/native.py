"""The values a batch scheduler backend's pure functions exchange with the shared machinery.

:class:`NativeState` is what a parser makes of one line of ``squeue``,
``condor_q``, ``bjobs``...; :class:`ArrayChunk` is a group of subjobs sent as
one native array, made by :func:`array_chunks`; :func:`compress_indices` writes
its indices the way schedulers take them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobfleet.job import Job, SubJob
from jobfleet.status import JobStatus

__all__ = ["ArrayChunk", "NativeState", "array_chunks", "compress_indices"]


@dataclass(frozen=True, slots=True)
class NativeState:
    """What the scheduler says about one unit."""

    status: JobStatus
    state: str = ""
    exit_code: int | None = None
    #: A scheduler-level failure reason ("timeout", "cancelled", ...); ``None`` to
    #: describe a failure by its exit code.
    reason: str | None = None
    #: The unit went back to the queue (requeue, preemption): it may move back.
    requeued: bool = False


@dataclass(frozen=True, slots=True)
class ArrayChunk:
    """Subjobs of one job sent as one native array; task index = subjob id - offset."""

    owner: Job
    units: tuple[SubJob, ...]
    offset: int

    @property
    def indices(self) -> list[int]:
        return [u.id - self.offset for u in self.units]

    @property
    def label(self) -> str:
        return f"{self.units[0].id}-{self.units[-1].id}"


def compress_indices(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (the usual array index syntax)."""
    parts: list[str] = []
    ordered = sorted(set(indices))
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


def array_chunks(
    owner: Job, subjobs: Sequence[SubJob], width: int, limit: int, index_base: int = 0
) -> list[ArrayChunk]:
    """``subjobs`` of ``owner`` as arrays of at most ``limit`` units, indices in range.

    ``width`` is how many indices one array can hold; subjob ``i`` of block
    ``b = i // width`` gets index ``i - b * width + index_base``.
    """
    size = max(1, min(width, limit))
    by_block: dict[int, list[SubJob]] = {}
    for sub in sorted(subjobs, key=lambda s: s.id):
        by_block.setdefault(sub.id // width, []).append(sub)
    chunks = []
    for number, members in sorted(by_block.items()):
        offset = number * width - index_base
        for first in range(0, len(members), size):
            chunks.append(ArrayChunk(owner, tuple(members[first : first + size]), offset))
    return chunks

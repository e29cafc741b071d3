"""A scripted driver for orchestration tests: no processes, every call recorded."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from jobfleet.errors import BackendError
from jobfleet.fleet.driver import NoteSubmitting, RecordSubmitted, register_driver, subjob_id_of
from jobfleet.job import Job
from jobfleet.store import JobRecord, StatusUpdate, SubjobRecord

NAME = "fake"


class FakeDriver:
    """Submits in batches of ``batch`` units; ``outcome`` decides what each poll reports."""

    name = NAME
    poll_interval = 0.01
    polls: ClassVar[list[list[tuple[int, int]]]] = []
    submits: ClassVar[list[list[int]]] = []
    cancels: ClassVar[list[tuple[list[int], list[str]]]] = []
    #: (job record, subjob record) -> status update or None; default: complete everything.
    outcome: ClassVar[Callable[[JobRecord, SubjobRecord], StatusUpdate | None] | None] = None
    fail_after_batches: ClassVar[int | None] = None
    #: This batch reaches the scheduler, but its answer is lost (the submitter dies).
    lose_answer_of_batch: ClassVar[int | None] = None
    #: What the scheduler has, by submission tag: [(subjob id, native id), ...].
    accepted: ClassVar[dict[str, list[tuple[int, str]]]] = {}
    store_view: ClassVar[Callable[[int], list[str]] | None] = None

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.batch = int(options.get("batch", 2))

    @classmethod
    def reset(cls) -> None:
        cls.polls, cls.submits, cls.cancels = [], [], []
        cls.outcome = cls.store_view = None
        cls.fail_after_batches = cls.lose_answer_of_batch = None
        cls.accepted = {}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    def submit(
        self,
        job: Job,
        units: Sequence[Job],
        record: RecordSubmitted,
        note: NoteSubmitting | None = None,
    ) -> None:
        ids = [subjob_id_of(u) for u in units]
        for n, first in enumerate(range(0, len(ids), self.batch)):
            if self.fail_after_batches is not None and n >= self.fail_after_batches:
                raise BackendError("fake scheduler refused the batch")
            chunk = ids[first : first + self.batch]
            tag = f"tag{len(FakeDriver.submits)}"
            if note is not None:
                note(chunk, tag)
            FakeDriver.submits.append(chunk)
            FakeDriver.accepted[tag] = [(i, f"fake.{i}") for i in chunk]
            if n == self.lose_answer_of_batch:
                raise BackendError("fake scheduler: the answer was lost")
            record(FakeDriver.accepted[tag])

    def find_submitted(self, job: Job, noted: Mapping[str, Sequence[int]]) -> list[tuple[int, str]]:
        return [pair for tag in noted for pair in FakeDriver.accepted.get(tag, [])]

    def poll(
        self, job_records: Mapping[int, JobRecord], active: Sequence[SubjobRecord]
    ) -> list[StatusUpdate]:
        FakeDriver.polls.append([(a.job_id, a.subjob_id) for a in active])
        decide = FakeDriver.outcome or (
            lambda job, sub: StatusUpdate(sub.job_id, sub.subjob_id, "completed", exit_code=0)
        )
        return [u for a in active if (u := decide(job_records[a.job_id], a)) is not None]

    def cancel(self, job_records: Mapping[int, JobRecord], records: Sequence[SubjobRecord]) -> None:
        job_id = records[0].job_id
        view = FakeDriver.store_view(job_id) if FakeDriver.store_view else []
        FakeDriver.cancels.append(([r.subjob_id for r in records], view))


register_driver(NAME, FakeDriver)

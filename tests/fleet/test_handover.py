"""Handing units over: a call whose answer was lost is found by its tag, not sent again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobfleet.errors import BackendError
from jobfleet.fleet import Fleet

from .fakedriver import NAME, FakeDriver


@pytest.fixture(autouse=True)
def _fresh_fake() -> Iterator[None]:
    FakeDriver.reset()
    yield
    FakeDriver.reset()


def test_a_call_whose_answer_was_lost_is_recorded_on_resume(store, make_job):
    FakeDriver.lose_answer_of_batch = 1  # the 2nd call reaches the scheduler, no answer
    fleet = Fleet(store)
    with pytest.raises(BackendError, match="answer was lost"):
        fleet.submit_job(make_job("lost", "true", n=5), NAME, {"batch": 2})
    record = store.get_job("lost")
    assert [s.status for s in store.subjobs(record.id)] == ["submitted"] * 2 + ["init"] * 3
    assert store.noted_submissions(record.id) == {"tag1": [2, 3]}

    FakeDriver.lose_answer_of_batch = None
    assert fleet.resume_job("lost") == 1  # only subjob 4 is sent
    assert FakeDriver.submits == [[0, 1], [2, 3], [4]]
    subs = store.subjobs(record.id)
    assert [(s.status, s.native_id, s.attempt) for s in subs] == [
        ("submitted", f"fake.{i}", 1) for i in range(5)
    ]
    assert store.noted_submissions(record.id) == {}


def test_a_noted_call_the_scheduler_never_got_is_sent_again(store, make_job):
    FakeDriver.lose_answer_of_batch = 1
    fleet = Fleet(store)
    with pytest.raises(BackendError):
        fleet.submit_job(make_job("gone", "true", n=4), NAME, {"batch": 2})
    FakeDriver.accepted.clear()  # e.g. the scheduler forgot it, or it never arrived
    FakeDriver.lose_answer_of_batch = None
    assert fleet.resume_job("gone") == 2
    assert FakeDriver.submits == [[0, 1], [2, 3], [2, 3]]
    assert {s.status for s in store.subjobs(store.get_job("gone").id)} == {"submitted"}

"""The recorder that commits a submission's batches on a second thread."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from jobfleet.fleet.recorder import BatchRecorder


def test_batches_are_committed_in_order_on_another_thread_and_all_before_the_end() -> None:
    committed: list[list[tuple[int, str]]] = []
    threads: set[str] = set()

    def commit(pairs: Sequence[tuple[int, str]]) -> None:
        threads.add(threading.current_thread().name)
        committed.append(list(pairs))

    batches = [[(i, f"n{i}"), (i + 1, f"n{i + 1}")] for i in range(0, 40, 2)]
    with BatchRecorder(commit) as recorder:
        for batch in batches:
            recorder.record(batch)
    assert committed == batches
    assert threads == {"jobfleet-record"}


def test_a_failed_commit_stops_later_ones_and_reaches_the_submitter() -> None:
    committed: list[int] = []
    second_failed = threading.Event()

    def commit(pairs: Sequence[tuple[int, str]]) -> None:
        if pairs[0][0] == 1:
            second_failed.set()
            raise RuntimeError("disk I/O error")
        committed.append(pairs[0][0])

    recorder = BatchRecorder(commit)
    with pytest.raises(RuntimeError, match="disk I/O error"), recorder:
        recorder.record([(0, "a")])
        recorder.record([(1, "b")])
        assert second_failed.wait(10)
        recorder.record([(2, "c")])  # raises: the failure is reported here
        recorder.record([(3, "d")])
    assert committed == [0]


def test_a_failure_at_the_end_is_raised_when_the_block_ends() -> None:
    def commit(pairs: Sequence[tuple[int, str]]) -> None:
        raise ValueError("unknown subjob")

    recorder = BatchRecorder(commit)
    with pytest.raises(ValueError, match="unknown subjob"), recorder:
        recorder.record([(0, "a")])


def test_what_was_given_is_committed_when_the_submitter_fails() -> None:
    committed: list[int] = []

    with (
        pytest.raises(KeyboardInterrupt),
        BatchRecorder(lambda p: committed.append(p[0][0])) as rec,
    ):
        for i in range(5):
            rec.record([(i, "x")])
        raise KeyboardInterrupt
    assert committed == [0, 1, 2, 3, 4]

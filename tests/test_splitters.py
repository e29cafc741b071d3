"""Splitters and argument generators, with the seed's documented cases and properties."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobfleet import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    Job,
    MaxFilesSplitter,
    MaxSubjobsSplitter,
    SplitterError,
    range_arguments,
)
from jobfleet.splitters import ARGUMENTS_SPLITTER_HARD_CAP


def _job(n_files: int) -> Job:
    job = Job("split")
    job.input_files = [f"root://host/f{i}" for i in range(n_files)]  # remote: no existence check
    return job


def _sizes(job: Job) -> list[int]:
    return [len(job.subjobs[i].input_files) for i in sorted(job.subjobs)]


@pytest.mark.parametrize(
    ("n_files", "limit", "sizes"),
    [(11, 4, [3, 3, 3, 2]), (5, 4, [2, 1, 1, 1]), (3, 10, [1, 1, 1]), (8, 1, [8])],
)
def test_max_subjobs_shares(n_files: int, limit: int, sizes: list[int]) -> None:
    job = _job(n_files)
    MaxSubjobsSplitter(max_subjobs=limit).create_subjobs(job)
    assert _sizes(job) == sizes


def test_max_files_chunks_in_order() -> None:
    job = _job(7)
    MaxFilesSplitter(max_files_per_subjob=3).create_subjobs(job)
    assert _sizes(job) == [3, 3, 1]
    assert job.subjobs[1].input_files == job.input_files[3:6]


@pytest.mark.parametrize("splitter", [MaxFilesSplitter, MaxSubjobsSplitter])
def test_file_splitter_without_files_warns(
    splitter: type, caplog: pytest.LogCaptureFixture
) -> None:
    job = _job(0)
    with caplog.at_level(logging.WARNING, logger="jobfleet"):
        splitter().create_subjobs(job)
    assert job.subjobs == {} and "no subjobs" in caplog.text


@pytest.mark.parametrize("bad", [0, -3, 1.5, "2", True])
def test_limits_below_one_are_value_errors(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_files_per_subjob"):
        MaxFilesSplitter(max_files_per_subjob=bad)
    with pytest.raises(ValueError, match="max_subjobs"):
        MaxSubjobsSplitter(max_subjobs=bad)
    with pytest.raises(ValueError, match="max_subjobs"):
        ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments), max_subjobs=bad)


def test_logged_count_is_right(caplog: pytest.LogCaptureFixture) -> None:
    job = _job(5)
    with caplog.at_level(logging.INFO, logger="jobfleet"):
        MaxFilesSplitter(max_files_per_subjob=2).create_subjobs(job)
    assert "created 3 subjobs" in caplog.text


def test_range_arguments_protocol() -> None:
    gen = ArgumentsGenerator(range_arguments, 2, 8, 3).generator
    assert [gen.send(None), gen.send(None)] == [(2,), (5,)]
    with pytest.raises(StopIteration):
        gen.send(None)
    with pytest.raises(ValueError, match="step"):
        _ = ArgumentsGenerator(range_arguments, 0, 5, 0).generator


def test_arguments_splitter_one_subjob_per_tuple() -> None:
    job = _job(2)
    ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 4)).create_subjobs(
        job
    )
    assert [job.subjobs[i].args for i in range(4)] == [[0], [1], [2], [3]]
    assert all(sj.input_files == job.input_files for sj in job.subjobs.values())


def test_arguments_splitter_exactly_at_limit_is_fine() -> None:
    job = _job(0)
    gen = ArgumentsGenerator(range_arguments, 0, 5)
    ArgumentsSplitter(arguments_generator=gen, max_subjobs=5).create_subjobs(job)
    assert len(job.subjobs) == 5


def test_arguments_splitter_over_limit_raises_and_creates_nothing() -> None:
    job = _job(0)
    gen = ArgumentsGenerator(range_arguments, 0, 6)
    with pytest.raises(SplitterError, match="more than 5"):
        ArgumentsSplitter(arguments_generator=gen, max_subjobs=5).create_subjobs(job)
    assert job.subjobs == {}


def test_infinite_generator_hits_hard_cap() -> None:
    job = _job(0)
    with pytest.raises(SplitterError, match="hard cap"):
        ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments)).create_subjobs(
            job
        )
    assert job.subjobs == {}
    assert ARGUMENTS_SPLITTER_HARD_CAP == 100_000


def test_arguments_splitter_needs_generator() -> None:
    with pytest.raises(SplitterError, match="arguments_generator"):
        ArgumentsSplitter().create_subjobs(_job(0))


def test_generator_running_out_early_leaves_empty_args(caplog: pytest.LogCaptureFixture) -> None:
    job = _job(6)
    splitter = MaxFilesSplitter(
        max_files_per_subjob=1, arguments_generator=ArgumentsGenerator(range_arguments, 10, 13)
    )
    with caplog.at_level(logging.WARNING, logger="jobfleet"):
        splitter.create_subjobs(job)
    assert [job.subjobs[i].args for i in range(6)] == [[10], [11], [12], [], [], []]
    assert "ran out of arguments" in caplog.text


def _by_parity(
    offset: int,
) -> Generator[Any, Any, None]:
    subjob = yield None
    while True:
        subjob = yield (subjob.id * 2 + offset, len(subjob.input_files))


def test_generator_sees_the_subjob() -> None:
    job = _job(5)
    MaxFilesSplitter(
        max_files_per_subjob=2, arguments_generator=ArgumentsGenerator(_by_parity, offset=1)
    ).create_subjobs(job)
    assert [job.subjobs[i].args for i in range(3)] == [[1, 2], [3, 2], [5, 1]]


def test_split_is_idempotent() -> None:
    job = _job(4)
    job.max_files_per_subjob = 2
    job.split()
    first = dict(job.subjobs)
    job.split()
    assert job.subjobs == first


@given(n_files=st.integers(0, 300), limit=st.integers(1, 50))
def test_max_subjobs_property(n_files: int, limit: int) -> None:
    job = _job(n_files)
    MaxSubjobsSplitter(max_subjobs=limit).create_subjobs(job)
    flat = [f for i in sorted(job.subjobs) for f in job.subjobs[i].input_files]
    assert flat == job.input_files  # every file exactly once, order kept
    assert len(job.subjobs) == min(limit, n_files)
    sizes = _sizes(job)
    assert all(s >= 1 for s in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


@given(n_files=st.integers(0, 300), per=st.integers(1, 50))
def test_max_files_property(n_files: int, per: int) -> None:
    job = _job(n_files)
    MaxFilesSplitter(max_files_per_subjob=per).create_subjobs(job)
    flat = [f for i in sorted(job.subjobs) for f in job.subjobs[i].input_files]
    assert flat == job.input_files
    assert all(1 <= s <= per for s in _sizes(job))
    assert len(job.subjobs) == -(-n_files // per)


@given(n_args=st.integers(0, 200), limit=st.integers(1, 200))
def test_arguments_splitter_property(n_args: int, limit: int) -> None:
    job = _job(1)
    splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, n_args), max_subjobs=limit
    )
    if n_args > limit:
        with pytest.raises(SplitterError):
            splitter.create_subjobs(job)
        assert job.subjobs == {}
    else:
        splitter.create_subjobs(job)
        assert [job.subjobs[i].args for i in sorted(job.subjobs)] == [[i] for i in range(n_args)]

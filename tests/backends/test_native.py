"""Array chunking and index compression, for any subjob ids a job may have."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from jobfleet.backends.native import array_chunks, compress_indices
from jobfleet.job import Job


def _expand(text: str) -> list[int]:
    values: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        values += range(int(first), int(last or first) + 1)
    return values


@given(st.sets(st.integers(min_value=0, max_value=5000), min_size=1))
def test_compressed_indices_expand_back_to_the_same_set(indices: set[int]) -> None:
    text = compress_indices(list(indices))
    assert _expand(text) == sorted(indices)
    assert text.count(",") < len(indices)  # neighbours share one range


@given(
    ids=st.sets(st.integers(min_value=0, max_value=300), min_size=1, max_size=120),
    width=st.integers(min_value=1, max_value=64),
    limit=st.integers(min_value=1, max_value=80),
    base=st.sampled_from([0, 1]),
)
def test_every_subjob_lands_in_one_array_with_an_index_in_range(
    ids: set[int], width: int, limit: int, base: int
) -> None:
    job = Job("chunked")
    job.working_dir = Path("/nonexistent/chunked")
    subjobs = [job.create_subjob(i) for i in sorted(ids)]
    chunks = array_chunks(job, list(reversed(subjobs)), width, limit, base)
    assert [u.id for c in chunks for u in c.units] == sorted(ids)
    for chunk in chunks:
        assert len(chunk.units) <= min(width, limit)
        assert all(base <= index < base + width for index in chunk.indices)
        assert chunk.label == f"{chunk.units[0].id}-{chunk.units[-1].id}"

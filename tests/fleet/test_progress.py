"""Where a job stands, from the counts and the few units a watcher reads per cycle."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from jobfleet.fleet.policy import RetryPolicy
from jobfleet.fleet.progress import JobProgress
from jobfleet.store import SubjobRecord

STATUSES = ("init", "submitted", "running", "completed", "failed")
REASONS = (None, "exit code 1", "cancelled", "timeout")


@st.composite
def subjob_records(draw: st.DrawFn) -> list[SubjobRecord]:
    rows = draw(
        st.lists(
            st.tuples(st.sampled_from(STATUSES), st.integers(0, 3), st.sampled_from(REASONS)),
            max_size=40,
        )
    )
    return [
        SubjobRecord(7, i, status, None, None, reason, attempt, None, None, None)
        for i, (status, attempt, reason) in enumerate(rows)
    ]


@given(
    records=subjob_records(),
    max_retries=st.integers(0, 2),
    fraction=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_units_never_submitted_need_only_be_counted(records, max_retries, fraction):
    # The watcher reads the failed units and those in init after an attempt; the units
    # never submitted (all of a big job's while it is being submitted) it only counts.
    policy = RetryPolicy(max_retries, fraction)
    from_all = JobProgress.of(7, "j", "local", records, policy, submitting=False)
    read = [r for r in records if r.status == "failed" or (r.status == "init" and r.attempt)]
    counts = Counter(r.status for r in records)
    from_read = JobProgress.from_counts(7, "j", "local", counts, read, policy, submitting=False)
    assert from_read == from_all
    assert from_all.unsubmitted == sum(1 for r in records if (r.status, r.attempt) == ("init", 0))

"""Submission tags: noted before a scheduler call, cleared once the call is recorded."""

from __future__ import annotations

from jobfleet.store import StatusUpdate, Store


def test_a_noted_call_stays_until_it_is_recorded(store: Store) -> None:
    job = store.add_job("tagged", description={}, backend="slurm", subjob_ids=range(6))
    store.record_submitted(job.id, [(5, "99")])
    store.note_submitting(job.id, [0, 1, 2], "aaaa 0")
    store.note_submitting(job.id, [3, 5, 42], "bbbb")  # 5 is submitted, 42 does not exist
    assert store.noted_submissions(job.id) == {"aaaa 0": [0, 1, 2], "bbbb": [3]}
    # The scheduler's answer for the first call is recorded: its tag goes with it.
    store.record_submitted(job.id, [(0, "7_0"), (1, "7_1"), (2, "7_2")])
    assert store.noted_submissions(job.id) == {"bbbb": [3]}
    # A later call for the same unit replaces the tag of an earlier, unanswered one.
    store.note_submitting(job.id, [3, 4], "cccc")
    assert store.noted_submissions(job.id) == {"cccc": [3, 4]}


def test_a_unit_put_back_for_a_retry_has_no_tag(store: Store) -> None:
    job = store.add_job("retried", description={}, backend="slurm", subjob_ids=[0, 1])
    store.note_submitting(job.id, [0, 1], "dddd")
    store.record_submitted(job.id, [(0, "8")])
    store.update_statuses([StatusUpdate(job.id, 0, "failed", exit_code=1, reason="exit code 1")])
    store.reset_for_retry(job.id, [0, 1])
    # Subjob 0's earlier submission must never be taken for its next attempt's.
    assert store.noted_submissions(job.id) == {}
    assert [s.status for s in store.subjobs(job.id)] == ["init", "init"]

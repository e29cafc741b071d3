"""The local driver: launching, adopting, lost units, cancelling, the claim protocol."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import wait_until
from jobfleet.fleet import Fleet
from jobfleet.fleet.control import cancel, resubmit
from jobfleet.fleet.localrunner import (
    CLAIM_FILE,
    CLAIM_GRACE,
    LOST_NO_EXIT_CODE,
    LocalDriver,
    process_started_at,
)
from jobfleet.fleet.unitfiles import LOST_RACE_EXIT, STATE_FILE, read_state, take_for_cancel
from jobfleet.store import StatusUpdate, Store
from jobfleet.workdir import EXIT_CODE_FILE

from .conftest import run_until_ended

# A unit that waits until the file `go` appears in the job's working directory.
WAIT_FOR_GO = 'while [ ! -e ../go ]; do sleep 0.02; done; echo "unit $1 ran"'


def _poll(driver: LocalDriver, store: Store) -> list[str]:
    """One runner poll over everything active; applies and returns the new statuses."""
    active = store.active("local")
    records = {a.job_id: store.get_job(a.job_id) for a in active}
    updates = driver.poll(records, active)
    store.update_statuses(updates)
    return [f"{u.subjob_id}:{u.status}" for u in updates]


def _statuses(store: Store, job_id: int) -> list[str]:
    return [s.status for s in store.subjobs(job_id)]


def _pid(workdir: Path) -> int:
    """The unit's pid, once the unit has written that it runs."""
    info = wait_until(
        lambda: (i := read_state(workdir)) is not None and i.pid > 0 and i,
        what=f"'running <pid>' in {workdir}",
    )
    return int(info.pid)


def test_submit_only_prepares_and_records(store, make_job):
    job = make_job("prep", "echo hi", n=2)
    record = Fleet(store).submit_job(job, "local")
    subjobs = store.subjobs(record.id)
    assert [(s.status, s.native_id, s.attempt) for s in subjobs] == [("submitted", "local", 1)] * 2
    for unit in job.subjobs.values():
        assert (unit.working_dir / "submit.sh").exists()
        assert not (unit.working_dir / CLAIM_FILE).exists()


def test_launches_up_to_max_processes_and_collects_outputs(store, make_job):
    job = make_job(
        "three", 'echo "out $1" > result.txt; ' + WAIT_FOR_GO, n=3, outputs=["result.txt"]
    )
    record = Fleet(store).submit_job(job, "local", {"max_processes": 2})
    driver = LocalDriver()
    assert sorted(_poll(driver, store)) == ["0:running", "1:running"]
    assert _statuses(store, record.id) == ["running", "running", "submitted"]
    assert not (job.subjobs[2].working_dir / CLAIM_FILE).exists()
    (job.working_dir / "go").touch()
    wait_until(lambda: _poll(driver, store) and _statuses(store, record.id)[2] != "submitted")
    wait_until(
        lambda: (
            _poll(driver, store) is not None and set(_statuses(store, record.id)) == {"completed"}
        )
    )
    for i, unit in job.subjobs.items():
        assert (unit.output_dir / "result.txt").read_text() == f"out {i}\n"
        assert (unit.working_dir / "stdout").read_text() == f"unit {i} ran\n"


def test_new_runner_adopts_running_unit(store, make_job):
    job = make_job("adopt", WAIT_FOR_GO)
    record = Fleet(store).submit_job(job, "local")
    first = LocalDriver()
    assert _poll(first, store) == ["0:running"]
    pid = _pid(job.subjobs[0].working_dir)
    del first  # the runner is gone; its unit is not
    second = LocalDriver()
    assert _poll(second, store) == []  # still running: adopted, not relaunched
    assert _pid(job.subjobs[0].working_dir) == pid
    (job.working_dir / "go").touch()
    wait_until(lambda: _poll(second, store) == ["0:completed"])
    assert (job.subjobs[0].working_dir / "stdout").read_text() == "unit 0 ran\n"
    assert store.subjobs(record.id)[0].exit_code == 0


def test_unit_gone_without_exit_code_is_lost(store, make_job):
    job = make_job("lost", WAIT_FOR_GO)
    record = Fleet(store).submit_job(job, "local")
    _poll(LocalDriver(), store)
    workdir = job.subjobs[0].working_dir
    os.killpg(_pid(workdir), signal.SIGKILL)  # the wrapper cannot record an exit code
    wait_until(lambda: process_started_at(_pid(workdir)) is None, what="unit to die")
    wait_until(lambda: _poll(LocalDriver(), store) == ["0:failed"])
    sub = store.subjobs(record.id)[0]
    assert (sub.reason, sub.exit_code) == (LOST_NO_EXIT_CODE, None)


def test_own_child_killed_reports_the_signal(store, make_job):
    job = make_job("killed", WAIT_FOR_GO)
    record = Fleet(store).submit_job(job, "local")
    driver = LocalDriver()
    _poll(driver, store)
    os.killpg(_pid(job.subjobs[0].working_dir), signal.SIGKILL)
    wait_until(lambda: _poll(driver, store) == ["0:failed"])
    sub = store.subjobs(record.id)[0]
    assert sub.exit_code == 137
    assert sub.reason == "killed by signal 9 (SIGKILL)"


def test_reused_pid_is_not_taken_for_the_unit(store, make_job):
    job = make_job("reuse", "true")
    record = Fleet(store).submit_job(job, "local")
    workdir = job.subjobs[0].working_dir
    (workdir / CLAIM_FILE).touch()
    # The unit wrote that it runs half a minute ago and is gone; its pid now belongs to a
    # process that started after that.
    with subprocess.Popen(["sleep", "60"]) as stranger:
        try:
            (workdir / STATE_FILE).write_text(f"running {stranger.pid}\n")
            past = time.time() - 30
            os.utime(workdir / STATE_FILE, (past, past))
            assert _poll(LocalDriver(), store) == ["0:failed"]
            assert store.subjobs(record.id)[0].reason == LOST_NO_EXIT_CODE
            assert stranger.poll() is None  # and it was left alone
        finally:
            stranger.kill()


def test_claim_without_state_file(store, make_job):
    job = make_job("claimed", 'echo "ran $1" >> ../marker-$1', n=2)
    record = Fleet(store).submit_job(job, "local", {"max_processes": 2})
    fresh, stale = (job.subjobs[i].working_dir for i in (0, 1))
    (fresh / CLAIM_FILE).touch()  # a runner launching it right now
    (stale / CLAIM_FILE).touch()
    past = time.time() - CLAIM_GRACE - 5
    os.utime(stale / CLAIM_FILE, (past, past))  # a runner killed before the unit started
    driver = LocalDriver()
    # The fresh claim is left alone; the stale one never started, so it is launched again.
    assert _poll(driver, store) == ["1:running"]
    wait_until(lambda: _poll(driver, store) == ["1:completed"])
    assert (job.working_dir / "marker-1").read_text() == "ran 1\n"
    assert not (job.working_dir / "marker-0").exists()
    assert [s.status for s in store.subjobs(record.id)] == ["submitted", "completed"]


def test_only_one_of_racing_launches_runs_the_unit(store, make_job):
    job = make_job("race", 'echo "ran" >> ../marker; ' + WAIT_FOR_GO)
    record = Fleet(store).submit_job(job, "local")
    workdir = job.subjobs[0].working_dir
    [rec] = store.subjobs(record.id)
    first, second = LocalDriver(), LocalDriver()
    # Both launch under the same claim, as after a stale claim seen by two runners.
    (workdir / CLAIM_FILE).touch()
    first._spawn(rec, job.subjobs[0], relaunch=True)
    second._spawn(rec, job.subjobs[0], relaunch=True)
    losers = [d._children[(record.id, 0, 1)] for d in (first, second)]
    wait_until(lambda: any(p.poll() == 75 for p in losers), what="one launch to give up")
    (job.working_dir / "go").touch()
    wait_until(lambda: _poll(first, store) == ["0:completed"])
    assert (job.working_dir / "marker").read_text() == "ran\n"
    assert (workdir / "stdout").read_text() == "unit 0 ran\n"


def test_launch_that_loses_to_a_cancel_runs_nothing(store, make_job):
    job = make_job("late", "echo ran > ran.txt")
    record = Fleet(store).submit_job(job, "local")
    workdir = job.subjobs[0].working_dir
    [rec] = store.subjobs(record.id)
    driver = LocalDriver()
    # The cancel takes the commit point between the runner's claim and the unit's start.
    assert take_for_cancel(workdir)
    driver._spawn(rec, job.subjobs[0], relaunch=True)
    child = driver._children[(record.id, 0, 1)]
    wait_until(lambda: child.poll() is not None, what="the launch to give up")
    assert child.returncode == LOST_RACE_EXIT
    assert _poll(driver, store) == ["0:failed"]
    sub = store.subjobs(record.id)[0]
    assert (sub.reason, driver._children) == ("cancelled", {})
    assert not (workdir / "ran.txt").exists()


def test_half_written_state_file_is_not_taken_for_a_dead_unit(store, make_job):
    job = make_job("half", "true")
    record = Fleet(store).submit_job(job, "local")
    workdir = job.subjobs[0].working_dir
    (workdir / CLAIM_FILE).touch()
    (workdir / STATE_FILE).write_text("")  # the unit is between creating and writing it
    assert _poll(LocalDriver(), store) == []
    past = time.time() - CLAIM_GRACE - 5
    os.utime(workdir / STATE_FILE, (past, past))
    assert _poll(LocalDriver(), store) == ["0:failed"]
    assert store.subjobs(record.id)[0].reason == LOST_NO_EXIT_CODE


def test_two_runners_never_launch_a_unit_twice(store, make_job):
    job = make_job("twice", "echo x >> ../marker-$1; " + WAIT_FOR_GO, n=2)
    Fleet(store).submit_job(job, "local", {"max_processes": 2})
    active = store.active("local")
    records = {a.job_id: store.get_job(a.job_id) for a in active}
    first, second = LocalDriver(), LocalDriver()
    launched = first.poll(records, active)
    again = second.poll(records, active)  # same stale view of the store
    assert [u.status for u in launched] == ["running", "running"]
    assert {u.status for u in again} <= {"running"}  # adopted (or still starting)...
    assert second._children == {}  # ... but not launched again
    (job.working_dir / "go").touch()
    store.update_statuses(launched)
    wait_until(
        lambda: _poll(second, store) == ["0:completed", "1:completed"] or not store.active("local")
    )
    for i in (0, 1):
        assert (job.working_dir / f"marker-{i}").read_text() == "x\n"


def test_cancel_queued_unit_blocks_it_for_good(store, make_job):
    job = make_job("cq", "echo ran > ran.txt")
    fleet = Fleet(store)
    record = fleet.submit_job(job, "local")
    assert cancel(fleet, record.id) == 1
    workdir = job.subjobs[0].working_dir
    state = read_state(workdir)
    assert state is not None and state.cancelled  # the cancel holds the commit point
    sub = store.subjobs(record.id)[0]
    assert (sub.status, sub.reason) == ("failed", "cancelled")
    # Even a runner with a view from before the cancel does not launch it.
    records = {record.id: record}
    stale = [s._replace(status="submitted") for s in store.subjobs(record.id)]
    [update] = LocalDriver().poll(records, stale)
    assert (update.status, update.reason) == ("failed", "cancelled")
    assert not (workdir / "ran.txt").exists()


def test_cancel_running_unit(store, make_job):
    job = make_job("cr", "touch started; " + WAIT_FOR_GO)
    fleet = Fleet(store)
    record = fleet.submit_job(job, "local")
    driver = LocalDriver()
    _poll(driver, store)
    workdir = job.subjobs[0].working_dir
    pid = _pid(workdir)
    # Past the wrapper's trap setup, so SIGTERM makes it record 143.
    wait_until(lambda: (workdir / "started").exists(), what="unit to start")
    assert cancel(fleet, record.id) == 1
    wait_until(lambda: process_started_at(pid) is None, what="cancelled unit to stop")
    assert (workdir / EXIT_CODE_FILE).read_text().strip() == "143"
    _poll(driver, store)
    sub = store.subjobs(record.id)[0]
    assert (sub.status, sub.reason) == ("failed", "cancelled")  # not "terminated (SIGTERM)"


def test_resubmission_removes_claim_and_state_files(store, make_job):
    """The claim is the stdout file, so its removal is checked with the others."""
    job = make_job("again", 'echo "run" >> ../runs-$1; exit 3')
    fleet = Fleet(store)
    record = fleet.submit_job(job, "local")
    run_until_ended(fleet, [record.id])
    workdir = job.subjobs[0].working_dir
    assert (workdir / CLAIM_FILE).exists() and (workdir / EXIT_CODE_FILE).exists()
    assert resubmit(fleet, record.id, failed_only=True) == 1
    for name in (CLAIM_FILE, STATE_FILE, EXIT_CODE_FILE, "stdout"):
        assert not (workdir / name).exists()
    state = run_until_ended(fleet, [record.id])
    assert state[record.id].counts == {"failed": 1}
    assert (job.working_dir / "runs-0").read_text() == "run\nrun\n"
    assert [a.attempt for a in store.attempts(record.id, 0)] == [1, 2]


def test_process_start_is_told_in_wall_clock_seconds():
    before = time.time()
    with subprocess.Popen(["sleep", "30"]) as proc:
        started_at = process_started_at(proc.pid)
        after = time.time()
        proc.kill()
    # Start times count in clock ticks (1/100 s here).
    assert started_at is not None and before - 0.1 <= started_at <= after + 0.1
    assert process_started_at(proc.pid) is None  # reaped: gone


def test_wake_ends_the_wait_only_while_nothing_of_ours_runs(store, make_job):
    # A background submission wakes the runner after recording units: an idle runner
    # must then poll at once, a busy one goes on until its units end.
    job = make_job("wake", WAIT_FOR_GO)
    Fleet(store).submit_job(job, "local")
    driver = LocalDriver()
    ended = driver._launcher.ended
    driver.wake()
    assert ended.is_set()
    driver.wait_for_change(0)  # the watcher's pause: it returns and clears the flag
    assert not ended.is_set()
    assert _poll(driver, store) == ["0:running"]
    driver.wake()
    assert not ended.is_set()
    (job.working_dir / "go").touch()
    wait_until(ended.is_set, what="the end of the unit to wake the watcher")
    assert _poll(driver, store) == ["0:completed"]


def test_an_earlier_attempts_end_is_not_taken_for_the_new_one(store, make_job):
    job = make_job("redo", 'echo "run" >> ../runs; exit 3')
    fleet = Fleet(store)
    record = fleet.submit_job(job, "local")
    driver = LocalDriver()
    assert _poll(driver, store) == ["0:running"]
    first = driver._children[(record.id, 0, 1)]
    wait_until(lambda: first.poll() is not None, what="attempt 1 to end")
    # Before this runner polls again, another watcher records the end and the unit is
    # submitted again.
    store.update_statuses([StatusUpdate(record.id, 0, "failed", exit_code=3, reason="exit 3")])
    assert resubmit(fleet, record.id, failed_only=True) == 1
    assert _poll(driver, store) == ["0:running"]  # attempt 2 starts; 1's exit is not its
    wait_until(lambda: _poll(driver, store) == ["0:failed"])
    sub = store.subjobs(record.id)[0]
    assert (sub.attempt, sub.exit_code) == (2, 3)
    assert (job.working_dir / "runs").read_text() == "run\nrun\n"


def test_a_launch_under_way_counts_as_ours(store, make_job, monkeypatch):
    # Units start between polls, as others end. A poll that finds a unit claimed but not
    # yet started must count it as this runner's own: taken for another runner's, it
    # lowered the job's limit until the next poll (one unit at a time instead of two).
    job = make_job("busy", "true", n=100)
    record = Fleet(store).submit_job(job, "local", {"max_processes": 2})
    driver = LocalDriver()
    others_seen: list[dict[int, int]] = []
    plan = driver._launcher.plan

    def plan_and_note(queued, limits, others):
        others_seen.append(dict(others))
        return plan(queued, limits, others)

    monkeypatch.setattr(driver._launcher, "plan", plan_and_note)
    wait_until(
        lambda: (
            _poll(driver, store) is not None and set(_statuses(store, record.id)) == {"completed"}
        ),
        step=0.005,
        what="all 100 units to complete",
    )
    assert len(others_seen) > 10  # polls made while units were being launched
    assert [o for o in others_seen if o] == []


def test_a_known_jobs_unit_claimed_elsewhere_is_then_followed_by_its_files(store, make_job):
    # A runner takes the units of a job its own process just stored as unclaimed without
    # looking at their files. If another runner launched one meanwhile, its claim fails
    # and from then on the unit's files tell what became of it.
    job = make_job("known", WAIT_FOR_GO, n=2)
    fleet = Fleet(store)
    record = fleet.store_job(job, "local")
    ours = LocalDriver({"max_processes": 2})
    ours.know_job(record, job)
    fleet.hand_over(record, job, None, None)
    other = LocalDriver({"max_processes": 2})
    active = store.active("local")
    launched = other.poll({record.id: record}, active[:1])  # not applied: still "submitted"
    assert [(u.subjob_id, u.status) for u in launched] == [(0, "running")]
    assert _poll(ours, store) == ["1:running"]  # its claim of 0 failed; 1 is its own
    (job.working_dir / "go").touch()
    wait_until(
        lambda: _poll(ours, store) is not None and _statuses(store, record.id) == ["completed"] * 2,
        what="both units to be seen completed by the runner that knew the job",
    )
    assert sorted((job.working_dir / str(i) / "stdout").read_text() for i in (0, 1)) == [
        "unit 0 ran\n",
        "unit 1 ran\n",
    ]

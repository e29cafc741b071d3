"""Ctrl-C (SIGINT) to ``jobfleet`` while local subjobs run and while a big submission is prepared.

``submit --watch`` on the local backend is the process running the subjobs:
Ctrl-C must stop them (their process groups gone), record them as interrupted,
and leave a job that ``resubmit --failed`` finishes. Ctrl-C during the
preparation of a submission must end in one clean line, leave a consistent
store, and ``submit --resume`` must send exactly what is missing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

from cli.conftest import Result, db  # noqa: F401
from helpers import wait_until
from jobfleet.cli.watch import INTERRUPTED
from jobfleet.fleet.unitfiles import STATE_FILE, read_state
from jobfleet.store import Store
from reliability_report import Reliability

from ._support import group_alive, jobfleet_process, marker_lines, run_jobfleet

RUNNING_SPEC = """
name = "ctrlc"
cmd = ["bash", "-c", "echo start >> {marks}/$1.mark; [ -e {gate} ] || sleep 60", "unit"]
working_dir = "{work}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "local"
max_processes = {parallel}
"""

BIG_SPEC = """
name = "bigprep"
cmd = ["bash", "-c", "echo once >> {marks}/$1.mark", "unit"]
working_dir = "{work}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "local"
max_processes = 8
"""


def _pids(work: Path) -> dict[int, int]:
    """Subjob id -> pid of its running process, from the local units' state files."""
    found = {}
    for path in work.glob(f"*/{STATE_FILE}"):
        state = read_state(path.parent)
        if state is not None and state.pid > 0:
            found[int(path.parent.name)] = state.pid
    return found


def _statuses(db_path: Path, job: str) -> Counter[tuple[str, str | None]]:
    with Store(db_path) as store:
        rows = store.subjobs(store.get_job(job).id)
    return Counter((str(r.status), r.reason) for r in rows)


def _resubmit_failed_and_watch(
    db_path: Path, job: str, marks: Path, timeouts: tuple[float, float]
) -> tuple[Result, Result, Counter[tuple[str, str | None]], dict[int, int], dict[int, int]]:
    """``resubmit JOB --failed``, then ``watch JOB`` to its end; both results, the final
    statuses, each subjob's attempt number and how often each subjob's marker was written."""
    again = run_jobfleet("resubmit", job, "--failed", timeout=timeouts[0])
    watched = run_jobfleet("watch", job, "--interval", "0.2", "--quiet", timeout=timeouts[1])
    with Store(db_path) as store:
        attempts = {r.subjob_id: r.attempt for r in store.subjobs(store.get_job(job).id)}
    return again, watched, _statuses(db_path, job), attempts, marker_lines(marks)


def test_ctrl_c_stops_local_run_and_resubmit_finishes(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """SIGINT to ``submit --watch`` (local, 3 of 6 subjobs running): they are killed
    and stored as interrupted; ``resubmit --failed`` then completes the job."""
    n, parallel = 6, 3
    marks, work, gate = tmp_path / "marks", tmp_path / "work", tmp_path / "gate"
    marks.mkdir()
    spec = tmp_path / "ctrlc.toml"
    spec.write_text(RUNNING_SPEC.format(marks=marks, gate=gate, work=work, n=n, parallel=parallel))

    proc = jobfleet_process("submit", str(spec), "--watch")
    wait_until(lambda: len(marker_lines(marks)) == parallel, timeout=60, what="3 subjobs running")
    running = _pids(work)
    assert all(group_alive(pid) for pid in running.values())  # pid files name live groups
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    gone = wait_until(
        lambda: not any(group_alive(pid) for pid in running.values()) or None,
        timeout=20,
        what="the interrupted subjobs' process groups to go",
    )
    after_interrupt = _statuses(db, "ctrlc")

    gate.touch()  # the second attempt finishes at once
    again, watched, final, _, runs = _resubmit_failed_and_watch(db, "ctrlc", marks, (60, 120))
    reliability.record(
        backend="local",
        cases=n,
        unit="subjobs",
        faults=1,
        lost=n - final[("completed", None)],
        duplicated=sum(1 for sid, count in runs.items() if count > (2 if sid in running else 1)),
        detail=f"SIGINT to submit --watch with {len(running)} subjobs running",
    )
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert f"ctrlc: stopped {n} unfinished subjob(s)" in err
    assert gone and len(running) == parallel
    assert after_interrupt == {("failed", INTERRUPTED): n}
    assert again.code == 0, again.err
    assert watched.code == 0, watched.err
    assert final == {("completed", None): n}
    # Interrupted ones ran twice (the first run stopped), never-started ones once.
    assert runs == {i: 2 if i in running else 1 for i in range(n)}


def test_ctrl_c_during_submission_then_resume(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """SIGINT to ``jobfleet submit`` of 1,500 local subjobs while it prepares working
    dirs: one clean line, then ``submit --resume`` sends exactly the rest."""
    n = 1500
    marks, work = tmp_path / "marks", tmp_path / "work"
    marks.mkdir()
    spec = tmp_path / "bigprep.toml"
    spec.write_text(BIG_SPEC.format(marks=marks, work=work, n=n))

    def recorded() -> int:
        if not db.exists():
            return 0
        with Store(db) as store:
            jobs = store.list_jobs()
            return store.counts(jobs[0].id).get("submitted", 0) if jobs else 0

    proc = jobfleet_process("submit", str(spec))
    # At the first recorded batch (16 units; the next ones are of up to 1,000): waiting
    # for 100 meant waiting for 1,016, and once the remaining 484 were prepared before
    # the signal arrived, so the submission had ended instead of being interrupted.
    wait_until(lambda: recorded() >= 1, timeout=120, what="the first units recorded")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    with Store(db) as store:
        integrity = store.integrity_check()
    before = _statuses(db, "bigprep")

    resumed = run_jobfleet("submit", str(spec), "--resume", "bigprep", timeout=180)
    watched = run_jobfleet("watch", "bigprep", "--interval", "0.2", "--quiet", timeout=240)
    final = _statuses(db, "bigprep")
    with Store(db) as store:
        attempts = Counter(r.attempt for r in store.subjobs(store.get_job("bigprep").id))
    runs = marker_lines(marks)
    reliability.record(
        backend="local",
        cases=n,
        unit="subjobs",
        faults=1,
        lost=n - sum(1 for i in range(n) if runs.get(i) == 1),
        duplicated=sum(1 for count in runs.values() if count > 1),
        detail=(
            f"SIGINT during preparation, {before[('submitted', None)]} of {n} "
            "recorded before it; submit --resume sent the rest"
        ),
    )
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["error: interrupted"] and out == "", err + out
    assert integrity == "ok"
    assert set(before) <= {("submitted", None), ("init", None), ("running", None)}
    assert 0 < before[("init", None)] < n  # it did stop in the middle
    unsubmitted = before[("init", None)]
    assert resumed.code == 0, resumed.err
    assert f"submitted {unsubmitted} subjob(s)" in resumed.err
    assert watched.code == 0, watched.err
    assert final == {("completed", None): n}
    assert attempts == {1: n}
    assert runs == dict.fromkeys(range(n), 1)
    assert os.path.getsize(db) > 0


SANDBOXED_SPEC = """
name = "watchprep"
cmd = ["bash", "-c", "echo once >> {marks}/$1.mark", "unit"]
working_dir = "{work}"
sandbox = ["{sandbox}"]
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "local"
max_processes = 2
"""


def test_ctrl_c_while_submit_watch_still_prepares(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """SIGINT to ``submit --watch`` (local) while its first subjobs run and the rest are
    still being prepared: the submission stops, every unfinished subjob is stored as
    interrupted, and ``resubmit --failed`` completes the job, each subjob run once."""
    n = 2000
    marks, work, sandbox = tmp_path / "marks", tmp_path / "work", tmp_path / "sandbox"
    marks.mkdir()
    sandbox.mkdir()
    for i in range(10):  # copied into every working dir: preparing takes a while
        (sandbox / f"part{i}.txt").write_text("x" * 100)
    spec = tmp_path / "watchprep.toml"
    spec.write_text(SANDBOXED_SPEC.format(marks=marks, work=work, sandbox=sandbox, n=n))

    def counts() -> Counter[str]:
        if not db.exists():
            return Counter()
        with Store(db) as store:
            jobs = store.list_jobs()
            return Counter(store.counts(jobs[0].id)) if jobs else Counter()

    proc = jobfleet_process("submit", str(spec), "--watch")
    at_signal = wait_until(
        lambda: (c := counts())["completed"] >= 20 and c["init"] > 0 and c,
        timeout=120,
        what="subjobs completing while others are still in init",
    )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    after_interrupt = _statuses(db, "watchprep")
    interrupted = after_interrupt[("failed", INTERRUPTED)]

    again, watched, final, attempts, runs = _resubmit_failed_and_watch(
        db, "watchprep", marks, (180, 300)
    )
    reliability.record(
        backend="local",
        cases=n,
        unit="subjobs",
        faults=1,
        lost=n - final[("completed", None)],
        duplicated=sum(1 for i, count in runs.items() if count > attempts[i]),
        detail=(
            f"SIGINT to submit --watch with {at_signal['init']} of {n} subjobs not yet "
            f"prepared; {interrupted} stored as interrupted, resubmitted"
        ),
    )
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert f"watchprep: stopped {interrupted} unfinished subjob(s)" in err
    # Nothing left queued or unsubmitted: each subjob completed or was interrupted.
    assert set(after_interrupt) == {("completed", None), ("failed", INTERRUPTED)}
    assert interrupted >= at_signal["init"] > 0
    assert again.code == 0, again.err
    assert watched.code == 0, watched.err
    assert final == {("completed", None): n}
    # Never run twice within one attempt. A subjob that ends in the moment between the
    # last poll and the interrupt is stored as interrupted and runs again when resubmitted
    # (its second attempt); every other subjob ran exactly once.
    assert all(runs.get(i, 0) in (1, attempts[i]) for i in range(n)), runs
    assert sum(1 for count in runs.values() if count == 2) <= 2 * 2  # max_processes, twice

"""The fake scheduler core, through the minimal personality's shims."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fakesched.core import FakeJob, FakeScheduler, Task, invoke
from fakesched.fixture import FakeHandle, _alive, fake_scheduler_fixture, running_fake
from helpers import wait_until

fake = fake_scheduler_fixture("minimal", queue_delay=0.1)


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def _submit(fake: FakeHandle, script: Path, n: int = 1) -> int:
    proc = subprocess.run(
        ["fsub", "-n", str(n), "-C", str(script.parent), str(script)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(proc.stdout.split()[1])


def _records(fake: FakeHandle) -> dict[str, dict[str, object]]:
    out = subprocess.run(["fq"], capture_output=True, text=True, check=True).stdout
    return {rec["id"]: rec for rec in map(json.loads, out.splitlines())}


def _ended(fake: FakeHandle, n: int) -> bool:
    jobs = fake.jobs()
    return len(jobs) == n and not any(j.active for j in jobs)


def test_jobs_run_for_real_in_their_dir_a_few_at_a_time(fake: FakeHandle, tmp_path: Path) -> None:
    fake.configure(max_running=2)
    script = _script(
        tmp_path / "w" / "job.sh",
        'echo "$FAKE_INDEX in $PWD"; [ -z "$SECRET_OF_TEST" ] || echo leaked; sleep 0.3\n'
        'exit "$FAKE_INDEX"\n',
    )
    os.environ["SECRET_OF_TEST"] = "x"  # a minimal environment must not carry it
    try:
        number = _submit(fake, script, 5)
    finally:
        del os.environ["SECRET_OF_TEST"]
    assert number == 100  # the personality's first_number
    wait_until(lambda: _ended(fake, 5), timeout=20)
    jobs = fake.jobs()
    assert [j.id for j in jobs] == [f"100.{i}" for i in range(1, 6)]
    assert [j.exit_code for j in jobs] == [1, 2, 3, 4, 5]
    for i in range(1, 6):
        assert (tmp_path / "w" / f"out.{i}").read_text() == f"{i} in {tmp_path / 'w'}\n"
    for job in jobs:  # queue delay, and never more than two at once
        assert job.start_time is not None and job.end_time is not None
        assert job.start_time - job.submit_time >= 0.1
        overlapping = [o for o in jobs if o.start_time <= job.start_time < o.end_time]  # type: ignore[operator]
        assert len(overlapping) <= 2


def test_cancel_queued_and_running(fake: FakeHandle, tmp_path: Path) -> None:
    fake.configure(max_running=1)
    script = _script(tmp_path / "job.sh", "trap 'echo term; exit 143' TERM\nsleep 30 & wait\n")
    _submit(fake, script, 2)
    wait_until(lambda: fake.jobs(["100.1"])[0].state == "running", timeout=10)
    pid = fake.jobs(["100.1"])[0].pid
    assert pid is not None
    out = subprocess.run(["fdel", "100.1", "100.2", "100.9"], capture_output=True, text=True)
    assert out.stdout.split("\n")[:2] == ["cancelled 100.1", "cancelled 100.2"]
    wait_until(lambda: _ended(fake, 2), timeout=10)
    first, second = fake.jobs()
    assert first.cancelled and first.exit_code == 143  # got SIGTERM and handled it
    assert (tmp_path / "out.1").read_text() == "term\n"
    assert second.cancelled and second.start_time is None
    wait_until(lambda: _gone(pid), timeout=5)


def test_cancel_escalates_to_sigkill(fake: FakeHandle, tmp_path: Path) -> None:
    fake.configure(kill_grace=0.3)
    _submit(fake, _script(tmp_path / "job.sh", "trap '' TERM\nsleep 30\n"))
    wait_until(lambda: fake.jobs()[0].state == "running", timeout=10)
    fake.cancel(["100.1"])
    wait_until(lambda: _ended(fake, 1), timeout=10)
    assert fake.jobs()[0].signal == signal.SIGKILL


def test_hold_switch_and_release(fake: FakeHandle, tmp_path: Path) -> None:
    fake.configure(hold=True, hold_reason="disk quota")
    _submit(fake, _script(tmp_path / "job.sh", "exit 0\n"))
    time.sleep(0.4)
    (job,) = fake.jobs()
    assert job.state == "held" and job.hold_reason == "disk quota"
    assert [j.id for j in fake.release(["100.1"])] == ["100.1"]
    wait_until(lambda: _ended(fake, 1), timeout=10)
    assert fake.jobs()[0].exit_code == 0


def test_forget_finished(fake: FakeHandle, tmp_path: Path) -> None:
    fake.configure(forget_finished=True)
    _submit(fake, _script(tmp_path / "job.sh", "echo done > marker\n"), 3)
    wait_until(lambda: (tmp_path / "marker").exists() and not fake.jobs(), timeout=10)
    assert _records(fake) == {}


def test_lose_kills_a_running_job_and_drops_it(fake: FakeHandle, tmp_path: Path) -> None:
    _submit(fake, _script(tmp_path / "job.sh", "sleep 30\n"), 2)
    wait_until(lambda: all(j.state == "running" for j in fake.jobs()), timeout=10)
    pid = fake.jobs(["100.1"])[0].pid
    assert pid is not None
    fake.lose("100.1")
    wait_until(lambda: [j.id for j in fake.jobs()] == ["100.2"], timeout=10)
    wait_until(lambda: _gone(pid), timeout=5)
    fake.configure(lose=1)
    wait_until(lambda: not fake.jobs(), timeout=10)
    assert fake.config().lose == 0


def _gone(pgid: int) -> bool:
    return not _alive(pgid)


def test_fail_rate_is_seeded_and_never_fails_too_often_in_a_row(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):  # two fresh fakes with the same seed answer alike
        fs = FakeScheduler(tmp_path / name)
        fs.configure(fail_rate=0.5, seed=7, max_consecutive_failures=2)
        runs.append([invoke(fs, "minimal", "fq", [])[0] for _ in range(30)])
    assert runs[0] == runs[1] and set(runs[0]) == {0, 75}
    assert "75, 75, 75" not in str(runs[0])
    fs.configure(seed=8)
    assert [invoke(fs, "minimal", "fq", [])[0] for _ in range(30)] != runs[0]
    assert invoke(fs, "minimal", "fdel", [])[2] in ("", "fdel: server busy, try again later\n")
    assert fs.calls() == {"fq": 60, "fdel": 1}
    assert FakeScheduler(tmp_path / "a").failures() == {"fq": runs[0].count(75)}


def test_transient_failure_through_the_shim(fake: FakeHandle) -> None:
    fake.configure(fail_rate=1.0, max_consecutive_failures=1)
    first, second = fake.run("fq"), fake.run("fq")
    assert (first.returncode, first.stderr) == (75, "fq: server busy, try again later\n")
    assert second.returncode == 0


def test_fail_after_does_the_work_but_loses_the_reply(fake: FakeHandle, tmp_path: Path) -> None:
    fake.configure(fail_rate=1.0, fail_after=True, fail_commands=["fsub"])
    script = _script(tmp_path / "job.sh", "exit 0\n")
    out = subprocess.run(["fsub", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 75 and out.stdout == ""
    assert [j.id for j in fake.jobs()] == ["100.1"]
    assert fake.run("fq").returncode == 0  # not in fail_commands


def test_job_that_cannot_start(fake: FakeHandle, tmp_path: Path) -> None:
    code, out, _ = invoke(fake, "minimal", "fsub", ["-C", str(tmp_path / "nowhere"), "x.sh"])
    assert (code, out) == (0, "Submitted 100\n")
    wait_until(lambda: _ended(fake, 1), timeout=10)
    job = fake.jobs()[0]
    assert job.exit_code is None and job.error is not None and "No such file" in job.error
    fake.configure(start_failure_holds=True)
    invoke(fake, "minimal", "fsub", ["-C", str(tmp_path / "nowhere"), "x.sh"])
    wait_until(lambda: fake.jobs(["101.1"])[0].state == "held", timeout=10)
    assert "No such file" in (fake.jobs(["101.1"])[0].hold_reason or "")


def test_stopping_leaves_no_process(tmp_path: Path) -> None:
    script = _script(tmp_path / "job.sh", "sleep 60 & sleep 60\n")
    with running_fake("minimal", tmp_path / "fake") as handle:
        code, _, _ = invoke(
            handle, "minimal", "fsub", ["-n", "2", "-C", str(tmp_path), str(script)]
        )
        assert code == 0
        wait_until(lambda: all(j.state == "running" for j in handle.jobs()), timeout=10)
        pids = [j.pid for j in handle.jobs() if j.pid]
        daemon = handle.daemon
    assert daemon.poll() is not None
    assert pids and all(_gone(pid) for pid in pids)


def test_records_round_trip_through_json(tmp_path: Path) -> None:
    fs = FakeScheduler(tmp_path)
    (job,) = fs.submit([Task(["true"], "/", {}, attrs={"Queue": "q"})], lambda n, p: f"{n}-{p}")
    assert job.id == "1-0" and job.state == "queued"
    assert FakeJob.from_dict(job.to_dict()) == job == fs.jobs(["1-0"])[0]
    with pytest.raises(TypeError):
        fs.configure(no_such_switch=True)

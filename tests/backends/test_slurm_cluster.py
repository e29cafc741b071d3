"""The Slurm backend against the real single-node cluster started by ci/slurm/start.sh.

Scheduler tests are slow on one node, so they are few and their jobs short.
The timeout job is submitted when this module starts and checked last.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import check_environment_only_when_inherited, wait_until
from jobfleet import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    BackendError,
    Job,
    monitor_jobs,
    range_arguments,
)
from jobfleet.backends.slurm import Slurm
from jobfleet.commands import command_calls
from jobfleet.workdir import EXIT_CODE_FILE

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

FAST = {"min_poll_interval": 0.2}


def _scan(root: Path, name: str, cmd: list[str], n: int, **backend_args: object) -> Job:
    job = Job(name)
    job.working_dir = root / name
    job.cmd = cmd
    job.backend_args = dict(backend_args)
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    return job


@pytest.fixture(scope="module")
def timeout_job(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Job]:
    root = tmp_path_factory.mktemp("slurm-timeout")
    job = Job("walltime")
    job.working_dir = root / "walltime"
    job.cmd = ["sleep", "300"]
    job.backend_args = {"walltime": 60}  # Slurm's smallest limit: --time=1 (one minute)
    backend = Slurm(backend_args={**FAST, "retry_scale": {"walltime": 2}})
    backend.submit(job)
    yield job
    backend.cancel(job)


def test_one_array_per_job_and_one_status_query_per_poll(tmp_path: Path, timeout_job: Job) -> None:
    # timeout_job: submitted now, so its minute runs out while the other tests run
    jobs = [_scan(tmp_path, f"poll{k}", ["sleep", "30"], 5) for k in range(3)]
    backend = Slurm(backend_args={"min_poll_interval": 0})
    before = command_calls()
    backend.submit(jobs)
    assert command_calls().get("sbatch", 0) - before.get("sbatch", 0) == 3
    assert all(
        s.native_id and s.native_id.endswith(f"_{s.id}") for j in jobs for s in j.subjobs.values()
    )
    before = command_calls()
    backend.poll(force=True)
    after = command_calls()
    assert after.get("squeue", 0) - before.get("squeue", 0) == 1
    assert after.get("sacct", 0) == before.get("sacct", 0)
    backend.cancel(jobs)
    assert all(j.status == "failed" for j in jobs)


def test_array_of_200_tasks(tmp_path: Path) -> None:
    job = _scan(tmp_path, "wide", ["true"], 200)
    backend = Slurm(backend_args={"min_poll_interval": 0.5})
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=1) == 0
    assert job.status_counts() == {"completed": 200}


def test_cancel_running_and_queued(tmp_path: Path) -> None:
    job = _scan(tmp_path, "cancel", ["sleep", "300"], 3)
    backend = Slurm(backend_args=FAST)
    backend.submit(job)
    wait_until(lambda: job.update_status() and job.subjobs[0].status == "running", timeout=60)
    backend.cancel(job.subjobs[0])
    assert job.subjobs[0].status == "failed" and job.subjobs[0].reason == "cancelled"
    backend.cancel(job)
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}
    ids = ",".join(s.native_id or "" for s in job.subjobs.values())

    def slurm_says_cancelled() -> bool:
        out = subprocess.run(
            ["squeue", "--noheader", "--array", "--states=all", "--format=%T", f"--jobs={ids}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        return out == ["CANCELLED"] * 3

    wait_until(slurm_says_cancelled, timeout=60)


def test_resource_directives_are_honoured(tmp_path: Path) -> None:
    job = Job("resources")
    job.working_dir = tmp_path / "res"
    job.cmd = ["sleep", "120"]
    job.backend_args = {"cores": 2, "memory": "100MB", "walltime": "00:05:00", "job_name": "jf-res"}
    backend = Slurm(backend_args=FAST)
    backend.submit(job)
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", str(job.native_id)], capture_output=True, text=True
    ).stdout
    backend.cancel(job)
    assert "JobName=jf-res " in shown and "TimeLimit=00:05:00" in shown
    assert "CPUs/Task=2" in shown and "MinMemoryNode=100M" in shown
    assert f"StdOut={job.working_dir}/stdout" in shown


def test_permanent_error_fails_at_once_with_slurms_message(tmp_path: Path) -> None:
    job = Job("badpart")
    job.working_dir = tmp_path / "bad"
    job.cmd = ["true"]
    job.backend_args = {"queue": "nosuch"}
    before = command_calls().get("sbatch", 0)
    with pytest.raises(BackendError, match=r"[Ii]nvalid partition"):
        Slurm().submit(job)
    assert command_calls()["sbatch"] - before == 1


def _shim(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_submission_that_timed_out_but_reached_slurm_is_not_sent_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    counter = tmp_path / "calls"
    # The first call really submits, then reports a client-side failure (as after a lost reply).
    _shim(tmp_path / "bin", "sbatch", f"""echo x >> {counter}
if [ "$(wc -l < {counter})" = 1 ]; then
  {real} "$@" > /dev/null
  echo "sbatch: error: Socket timed out on send/recv operation" >&2; exit 1
fi
exec {real} "$@"
""")  # fmt: skip
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    job = _scan(tmp_path, "once", ["true"], 3)
    backend = Slurm(backend_args=FAST)
    backend.submit(job)
    assert counter.read_text().count("x") == 1  # the tag was found: no second sbatch
    assert monitor_jobs([job], heartbeat=0.3) == 0
    array_id = job.subjobs[0].native_id.split("_")[0]  # type: ignore[union-attr]
    listed = subprocess.run(
        ["squeue", "--noheader", "--me", "--states=all", "--format=%F|%k"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tag = next(
        line.split("|")[1] for line in listed.splitlines() if line.startswith(f"{array_id}|")
    )
    assert sum(1 for line in set(listed.splitlines()) if line.endswith(f"|{tag}")) == 1


def test_transient_failure_before_reaching_slurm_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    counter = tmp_path / "calls"
    _shim(tmp_path / "bin", "sbatch", f"""echo x >> {counter}
if [ "$(wc -l < {counter})" -le 2 ]; then
  echo "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying" >&2
  exit 1
fi
exec {real} "$@"
""")  # fmt: skip
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    job = _scan(tmp_path, "retry", ["true"], 2)
    Slurm(backend_args=FAST).submit(job)
    assert counter.read_text().count("x") == 3
    assert monitor_jobs([job], heartbeat=0.3) == 0


@pytest.mark.parametrize("accounting", [True, False])
def test_job_the_scheduler_forgot_is_resolved_from_its_exit_code_file(
    tmp_path: Path, accounting: bool
) -> None:
    backend = Slurm(backend_args={"min_poll_interval": 0, "exit_code_grace": 3600})
    if not accounting:
        backend.config()["AccountingStorageType"] = "accounting_storage/none"
    jobs = []
    for name, never_known_id in (("finished", "999998"), ("vanished", "999999")):
        job = Job(name)
        job.working_dir = tmp_path / name
        job.working_dir.mkdir()
        job.cmd = ["true"]
        backend.adopt(job, never_known_id)
        jobs.append(job)
    (jobs[0].working_dir / EXIT_CODE_FILE).write_text("0\n")
    backend.poll(force=True)
    assert jobs[0].status == "completed"
    assert jobs[1].status == "submitted"  # within the grace period: keep waiting, no verdict
    backend.exit_code_grace = 0
    backend.poll(force=True)
    assert jobs[1].status == "failed" and jobs[1].reason.startswith("lost")  # type: ignore[union-attr]


def test_global_job_limit_holds_submission_back(tmp_path: Path) -> None:
    job = _scan(tmp_path, "limited", ["true"], 4)
    probe = Slurm()
    already = probe.parse_active_count(probe.run(probe.active_count_command() or []).stdout)
    # Room for two more than the other tests' jobs that are still queued or running.
    backend = Slurm(
        backend_args={
            "global_job_limit": already + 2,
            "sleep_between_submission_checks": 0.5,
            **FAST,
        }
    )
    backend.submit(job)  # arrays of at most `limit` tasks; later ones wait for room
    arrays = {s.native_id.split("_")[0] for s in job.subjobs.values()}  # type: ignore[union-attr]
    assert len(arrays) == -(-4 // (already + 2))
    assert monitor_jobs([job], heartbeat=0.3) == 0


def test_walltime_exceeded_is_a_timeout(timeout_job: Job) -> None:
    deadline_s = 240
    wait_until(lambda: timeout_job.update_status().is_final, timeout=deadline_s, step=1)
    assert timeout_job.status == "failed" and timeout_job.reason == "timeout"
    # retry_scale: the next attempt asks for twice the walltime.
    timeout_job.status = "init"
    backend = timeout_job.result.backend  # type: ignore[union-attr]
    backend.submit(timeout_job)
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", str(timeout_job.native_id)],
        capture_output=True,
        text=True,
    ).stdout
    assert "TimeLimit=00:02:00" in shown and timeout_job.attempt == 2


def test_environment_is_captured_and_forwarded_on_slurm(
    tmp_path: Path, fresh_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    awkward = "two words, 'single' \"double\" $HOME `date` ünï"
    monkeypatch.setenv("VIRTUAL_ENV", str(fresh_venv))
    monkeypatch.setenv("JF_AWKWARD", awkward)
    captured, bare = Job("venv-captured"), Job("venv-bare")
    for job in (captured, bare):
        job.working_dir = tmp_path / job.name
        job.cmd = ["bash", "-c", 'jf-only-in-venv && printf "%s" "${JF_AWKWARD:-unset}" > fwd']
    captured.append_current_setup_cmds()
    captured.forward_environment(["JF_AWKWARD"])
    Slurm(backend_args=FAST).submit([captured, bare])
    monitor_jobs([captured, bare], heartbeat=0.3)
    assert captured.status == "completed", (captured.working_dir / "stderr").read_text()
    assert (captured.working_dir / "stdout").read_text().strip() == f"prefix {fresh_venv}"
    assert (captured.working_dir / "fwd").read_text() == awkward
    # Not captured: Slurm's default here (--export=NONE) does not pass the venv on.
    assert bare.status == "failed" and bare.exit_code == 127


def test_submitting_environment_only_when_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_environment_only_when_inherited(Slurm(backend_args=FAST), tmp_path, monkeypatch, 0.3)

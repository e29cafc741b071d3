"""The Grid Engine backend against the real single-host cell started by ci/sge/start.sh.

Skipped with a reason when no cell answers (failed instead in CI with JOBFLEET_SGE=1).
The cell schedules every second and has 8 slots, so jobs are short and few.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from backends.sge_fixture import sge_cell  # noqa: F401  (the session fixture)
from helpers import calls_since, check_environment_only_when_inherited, wait_until
from jobfleet import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    BackendError,
    Job,
    range_arguments,
)
from jobfleet.backends.sge import GridEngine
from jobfleet.commands import command_calls
from jobfleet.workdir import EXIT_CODE_FILE

pytestmark = [pytest.mark.sge, pytest.mark.usefixtures("sge_cell")]

FAST = {"min_poll_interval": 0.2, "exit_code_grace": 60}


def _scan(root: Path, name: str, cmd: list[str], n: int, **backend_args: object) -> Job:
    job = Job(name)
    job.working_dir = root / name
    job.cmd = cmd
    job.backend_args = dict(backend_args)
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    return job


def _slots() -> int:
    """Slots of all.q on this host ("resv/used/tot." column of qstat -f)."""
    shown = subprocess.run(["qstat", "-f", "-q", "all.q"], capture_output=True, text=True)
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("all.q@"))
    return int(line.split()[2].split("/")[-1])


def _qstat_j(native_id: str) -> str:
    return subprocess.run(
        ["qstat", "-j", native_id.split(".")[0]], capture_output=True, text=True, check=True
    ).stdout


def test_fifty_subjobs_split_by_files_one_submit_one_query_per_poll(
    tmp_path: Path, data_files: object
) -> None:
    files = data_files(100)  # type: ignore[operator]
    job = Job("files")
    job.working_dir = tmp_path / "files"
    job.output_dir = tmp_path / "out"
    job.cmd = ["bash", "-c", "cat __BACKEND_INPUT_FILES__.json > seen.json"]
    job.output_patterns = ["seen.json"]
    job.input_files = [str(f) for f in files]
    job.max_files_per_subjob = 2
    backend = GridEngine(backend_args={"min_poll_interval": 0})
    before = command_calls()
    backend.submit(job)
    assert len(job.subjobs) == 50 and calls_since(before, "qsub") == 1
    array = {s.native_id.split(".")[0] for s in job.subjobs.values()}  # type: ignore[union-attr]
    assert len(array) == 1
    while not job.ready():
        before = command_calls()
        backend.poll(force=True)
        assert calls_since(before, "qstat") == 1 and calls_since(before, "qacct") <= 1
        time.sleep(0.2)
    assert job.status_counts() == {"completed": 50}
    for i in job.subjobs:
        seen = json.loads((tmp_path / "out" / str(i) / "seen.json").read_text())
        assert seen == [str(files[2 * i]), str(files[2 * i + 1])]


def test_cancel_running_and_queued(tmp_path: Path) -> None:
    slots = _slots()
    # Each task marks that its command runs: a qdel that reaches a task while its shepherd
    # is still starting can leave the command running to its end (seen once under load).
    job = _scan(tmp_path, "cancel", ["bash", "-c", "touch started; sleep 300"], slots + 2)
    backend = GridEngine(backend_args=FAST)
    backend.submit(job)

    def all_slots_run() -> bool:
        return len(list(job.working_dir.glob("*/started"))) == slots

    wait_until(all_slots_run, timeout=120, step=0.3, what=f"{slots} tasks to run")  # 2 queued
    job.update_status()
    assert job.subjobs[0].status == "running"
    before = command_calls()
    backend.cancel(job)
    assert calls_since(before, "qdel") == 1
    assert {s.reason for s in job.subjobs.values()} == {"cancelled"}
    array = str(job.subjobs[0].native_id).split(".")[0]

    def gone() -> bool:
        listed = subprocess.run(["qstat", "-xml"], capture_output=True, text=True).stdout
        return f"<JB_job_number>{array}</JB_job_number>" not in listed

    wait_until(gone, timeout=60, step=0.3)


def test_resource_directives_are_honoured(tmp_path: Path) -> None:
    job = Job("resources")
    job.working_dir = tmp_path / "res"
    job.cmd = ["sleep", "120"]
    job.backend_args = {
        "cores": 2, "memory": "100MB", "walltime": "00:05:00", "job_name": "jf-res",
        "account": "jobfleet", "queue": "all.q",
    }  # fmt: skip
    backend = GridEngine(backend_args=FAST)
    backend.submit(job)
    shown = _qstat_j(str(job.native_id))
    backend.cancel(job)
    assert "job_name:                   jf-res" in shown
    assert "project:                    jobfleet" in shown
    assert "parallel environment:  smp range: 2" in shown
    assert "h_vmem=50M" in shown and "h_rt=300" in shown  # per slot; seconds
    assert f"stdout_path_list:           NONE:NONE:{job.working_dir}/stdout" in shown


def test_permanent_error_fails_at_once_with_the_cells_message(tmp_path: Path) -> None:
    job = Job("badqueue")
    job.working_dir = tmp_path / "bad"
    job.cmd = ["true"]
    job.backend_args = {"queue": "nosuch"}
    before = command_calls()
    with pytest.raises(BackendError, match='unknown queue "nosuch"'):
        GridEngine().submit(job)
    assert calls_since(before, "qsub") == 1


def test_units_the_cell_never_heard_of_are_settled_by_exit_code_files(tmp_path: Path) -> None:
    backend = GridEngine(backend_args={"min_poll_interval": 0, "exit_code_grace": 3600})
    jobs = []
    for name, never_known_id in (("finished", "999998.1"), ("vanished", "999999")):
        job = Job(name)
        job.working_dir = tmp_path / name
        job.working_dir.mkdir()
        job.cmd = ["true"]
        backend.adopt(job, never_known_id)
        jobs.append(job)
    (jobs[0].working_dir / EXIT_CODE_FILE).write_text("0\n")
    backend.poll(force=True)  # qacct: "job id 999998 not found" is no error
    assert jobs[0].status == "completed"
    assert jobs[1].status == "submitted"  # within the grace period: no verdict yet
    backend.exit_code_grace = 0
    backend.poll(force=True)
    assert jobs[1].status == "failed" and (jobs[1].reason or "").startswith("lost")


def test_submitting_environment_only_when_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_environment_only_when_inherited(GridEngine(backend_args=FAST), tmp_path, monkeypatch, 0.3)

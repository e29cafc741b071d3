"""End-to-end runs on the Local backend: real bash processes in real directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import wait_until
from jobfleet import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    Job,
    Local,
    SpecError,
    monitor_jobs,
    range_arguments,
)
from jobfleet.inputs import INPUT_DATA_FILE
from jobfleet.workdir import EXIT_CODE_FILE


@pytest.fixture
def backend() -> Iterator[Local]:
    local = Local(max_processes=2)
    yield local
    local.shutdown(grace=5)


def _job(tmp_path: Path, name: str, cmd: list[str], **attrs: object) -> Job:
    job = Job(name)
    job.working_dir = tmp_path / "work" / name
    job.output_dir = tmp_path / "out" / name
    job.cmd = cmd
    for key, value in attrs.items():
        setattr(job, key, value)
    return job


def test_success_writes_the_expected_working_dir(tmp_path: Path, backend: Local) -> None:
    sandbox_dir = tmp_path / "lib"
    (sandbox_dir / "sub").mkdir(parents=True)
    (sandbox_dir / "sub" / "helper.txt").write_text("helper")
    script = tmp_path / "hello.sh"
    script.write_text('echo "hello $1"; echo oops >&2\n')
    data = tmp_path / "in.txt"
    data.write_text("d")
    job = _job(
        tmp_path,
        "ok",
        ["bash", "hello.sh"],
        args=["world"],
        input_sandbox_files=[script, sandbox_dir],
        input_files=[data],
    )
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 0
    assert job.status == "completed" and job.exit_code == 0 and job.reason is None
    wd = job.working_dir
    assert (wd / "stdout").read_text() == "hello world\n"
    assert (wd / "stderr").read_text() == "oops\n"
    assert (wd / EXIT_CODE_FILE).read_text().strip() == "0"
    assert json.loads((wd / INPUT_DATA_FILE).read_text()) == [str(data)]
    assert (wd / "hello.sh").is_file() and (wd / "lib" / "sub" / "helper.txt").is_file()
    assert os.access(wd / "submit.sh", os.X_OK)


def test_output_pattern_escaping_is_refused_before_anything_is_written(
    tmp_path: Path, backend: Local
) -> None:
    for pattern in ["../x", "/etc/passwd", "a/../../b"]:
        job = _job(tmp_path, "escape", ["true"], output_patterns=[pattern])
        with pytest.raises(SpecError, match="outside the working directory"):
            backend.submit(job)
        assert not job.working_dir.exists()


def test_symlink_out_of_workdir_not_collected(tmp_path: Path, backend: Local) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    job = _job(
        tmp_path, "link", ["bash", "-c", f"ln -s {secret} leak.txt; echo ok > real.txt"],
        output_patterns=["*.txt"],
    )  # fmt: skip
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 0
    assert (job.output_dir / "real.txt").read_text() == "ok\n"
    assert not (job.output_dir / "leak.txt").exists()


def test_missing_input_files_are_dropped(tmp_path: Path, backend: Local) -> None:
    present = tmp_path / "here.txt"
    present.write_text("x")
    job = _job(tmp_path, "missing", ["true"], input_files=[present, tmp_path / "absent.txt"])
    job.max_files_per_subjob = 1
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 0
    assert list(job.subjobs) == [0]
    assert job.subjobs[0].input_files == [str(present)]


def test_bad_cmd_rejected(tmp_path: Path, backend: Local) -> None:
    with pytest.raises(SpecError, match="'cmd'"):
        backend.submit(_job(tmp_path, "nocmd", []))
    with pytest.raises(SpecError, match="input_sandbox_files"):
        backend.submit(_job(tmp_path, "nosb", ["true"], input_sandbox_files=[tmp_path / "nope"]))


def test_thousand_subjobs(tmp_path: Path) -> None:
    local = Local(max_processes=2)
    job = _job(tmp_path, "many", ["bash", "-c", 'echo "$1" > mark', "many"])
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, 1000)
    )
    local.submit(job)
    local.join()
    assert job.status == "completed"
    assert job.status_counts() == {"completed": 1000}
    assert all(
        (job.working_dir / str(i) / "mark").read_text() == f"{i}\n" for i in range(0, 1000, 97)
    )


def test_max_processes_is_respected_and_can_change(tmp_path: Path) -> None:
    local = Local(max_processes=2)
    gate = tmp_path / "gate"
    cmd = ["bash", "-c", f'touch "$PWD.started"; while [ ! -e {gate} ]; do sleep 0.01; done']
    job = _job(tmp_path, "limit", cmd)
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 5))
    local.submit(job)
    started = lambda: len(list((tmp_path / "work" / "limit").glob("*.started")))  # noqa: E731
    wait_until(lambda: started() == 2)
    job.update_status()
    assert job.status_counts() == {"running": 2, "submitted": 3}
    assert started() == 2  # still only two: the limit holds while they block
    gate.touch()
    local.max_processes = 3  # drains the pool first, then rebuilds it
    assert job.status == "completed" and local.max_processes == 3


def test_cancel_queued_and_running(tmp_path: Path) -> None:
    local = Local(max_processes=1)
    job = _job(tmp_path, "cancel", ["sleep", "60"])
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 3))
    local.submit(job)
    wait_until(lambda: job.update_status() and job.subjobs[0].status == "running")
    local.cancel(job)
    assert monitor_jobs([job], heartbeat=0.5) == 1
    assert {sj.reason for sj in job.subjobs.values()} == {"cancelled"}
    assert job.subjobs[0].exit_code == 143  # it was running: the wrapper saw SIGTERM


def test_shutdown_terminates_running_jobs(tmp_path: Path) -> None:
    local = Local(max_processes=1)
    job = _job(tmp_path, "shut", ["sleep", "60"])
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 2))
    local.submit(job)
    wait_until(lambda: job.update_status() and job.subjobs[0].status == "running")
    local.shutdown()
    job.update_status()
    first, second = job.subjobs[0], job.subjobs[1]
    assert first.status == "failed" and first.exit_code == 143
    assert first.reason == "terminated (SIGTERM)"
    assert second.status == "failed" and second.reason == "not started: terminated"


def test_environment_is_clean_unless_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBFLEET_TEST_SECRET", "visible")
    cmd = ["bash", "-c", 'echo "[${JOBFLEET_TEST_SECRET:-}] $PATH"']
    inherit = _job(tmp_path, "inherit", cmd)
    clean = _job(tmp_path, "clean", cmd)
    Local(inherit_env=True).submit(inherit)
    Local().submit(clean)
    monitor_jobs([inherit, clean], heartbeat=0.5)
    assert (inherit.working_dir / "stdout").read_text().startswith("[visible]")
    assert (clean.working_dir / "stdout").read_text() == "[] /usr/local/bin:/usr/bin:/bin\n"


CTRL_C_PROGRAM = textwrap.dedent(
    """
    import json, sys
    from jobfleet import Job, Local
    job = Job("ctrlc")
    job.working_dir = sys.argv[1]
    job.cmd = ["bash", "-c", "touch started; sleep 60"]
    backend = Local()
    backend.submit(job)
    try:
        backend.join()
    except KeyboardInterrupt:
        backend.join()
        print(json.dumps([job.status.value, job.exit_code, job.reason]))
    """
)


def test_ctrl_c_terminates_local_jobs(tmp_path: Path) -> None:
    workdir = tmp_path / "ctrlc"
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_PROGRAM, str(workdir)], stdout=subprocess.PIPE, text=True
    )
    wait_until(lambda: (workdir / "started").exists())
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert json.loads(out) == ["failed", 130, "interrupted (SIGINT)"]


def test_resubmitting_a_failed_subjob(tmp_path: Path, backend: Local) -> None:
    flag = tmp_path / "second-try"
    job = _job(tmp_path, "retry", ["bash", "-c", f"[ -e {flag} ] || {{ touch {flag}; exit 4; }}"])
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 1 and job.exit_code == 4
    job.status = "init"
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 0
    assert job.attempt == 2 and job.exit_code == 0


def test_submit_list_of_jobs(tmp_path: Path, backend: Local) -> None:
    jobs = [_job(tmp_path, f"l{i}", ["bash", "-c", f"exit {i}"]) for i in range(3)]
    backend.submit(jobs)
    assert monitor_jobs(jobs, heartbeat=0.5) == 2


def test_seed_style_monitor_call(tmp_path: Path, backend: Local) -> None:
    class Args:
        heartbeat = 0.2

    job = _job(tmp_path, "seedstyle", ["true"])
    backend.submit(job)
    assert monitor_jobs(Args(), [job]) == 0


def test_sandbox_file_paths(data_files: Callable[[int], list[Path]], tmp_path: Path) -> None:
    files = data_files(3)
    job = _job(tmp_path, "sb", ["ls"], input_sandbox_files=files)
    local = Local()
    local.submit(job)
    local.join()
    assert job.status == "completed"
    assert sorted(p.name for p in job.working_dir.glob("f*.txt")) == [f.name for f in files]


def test_output_dir_inside_working_dir_is_not_copied_into_itself(
    tmp_path: Path, backend: Local
) -> None:
    job = _job(tmp_path, "nested", ["bash", "-c", "echo r > result.txt"], output_patterns=["*"])
    job.output_dir = job.working_dir / "output"
    for _attempt in range(2):  # the second run finds the first one's output directory
        job.status = "init"
        backend.submit(job)
        assert monitor_jobs([job], heartbeat=0.5) == 0
    assert (job.output_dir / "result.txt").read_text() == "r\n"
    assert not (job.output_dir / "output").exists()


def test_outputs_never_include_jobfleets_own_files(tmp_path: Path, backend: Local) -> None:
    job = _job(tmp_path, "own", ["bash", "-c", "echo {} > result.json"], output_patterns=["*"])
    backend.submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 0
    collected = sorted(p.name for p in job.output_dir.iterdir())
    assert collected == ["result.json", "stderr", "stdout"]

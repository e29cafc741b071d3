"""The wrapper script (golden file), what it does with signals and setup lines, and prepare()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import wait_until
from jobfleet import Job
from jobfleet.inputs import INPUT_DATA_FILE
from jobfleet.templating import render
from jobfleet.workdir import (
    EXIT_CODE_FILE,
    RUNNING_MARKER,
    SHARED_EMPTY_INPUT_LIST,
    prepare,
    read_exit_code,
    render_wrapper,
)

GOLDEN = Path(__file__).parent / "golden"


def _job() -> Job:
    job = Job("golden\n; rm -rf /")  # a hostile name must not escape its comment line
    job.working_dir = "/w"
    job.cmd = ["python3", "run.py"]
    job.args = ["a b", "$X", "it's"]
    job.setup_cmds = ["export LC_ALL=C", "source /opt/env.sh"]
    return job


def test_wrapper_matches_golden_file() -> None:
    text = render_wrapper(_job(), directives=["#SBATCH --job-name=x"])
    golden = GOLDEN / "wrapper.sh"
    if os.environ.get("JOBFLEET_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_wrapper_is_valid_bash(tmp_path: Path) -> None:
    script = tmp_path / "w.sh"
    script.write_text(render_wrapper(_job()))
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_wrapper_records_signal_exit_codes(tmp_path: Path, signum: int, code: int) -> None:
    job = Job("sig")
    job.working_dir = tmp_path
    job.cmd = ["bash", "-c", "touch started; sleep 30"]
    prepare(job, render_wrapper(job))
    proc = subprocess.Popen(["bash", "submit.sh"], cwd=tmp_path, start_new_session=True)
    wait_until(lambda: (tmp_path / "started").exists())
    os.killpg(proc.pid, signum)
    assert proc.wait(timeout=20) == code
    assert read_exit_code(tmp_path) == code


def test_setup_that_changes_directory_still_records_exit_code(tmp_path: Path) -> None:
    job = Job("cd")
    job.working_dir = tmp_path / "w"
    job.cmd = ["bash", "-c", "pwd > where; exit 5"]
    job.setup_cmds = [f"cd {tmp_path}"]
    prepare(job, render_wrapper(job))
    assert subprocess.run(["bash", "submit.sh"], cwd=job.working_dir).returncode == 5
    assert read_exit_code(job.working_dir) == 5
    assert (job.working_dir / "where").read_text().strip() == str(job.working_dir)


def test_start_marker_says_running_then_holds_the_exit_code(tmp_path: Path) -> None:
    job = Job("marked")
    job.working_dir = tmp_path
    # The command sees the marker; setup turning noclobber on must not stop the result.
    job.cmd = ["bash", "-c", f"cat {EXIT_CODE_FILE} > seen; exit 4"]
    job.setup_cmds = ["set -C"]
    prepare(job, render_wrapper(job, start_marker=True, lost_race_exit=75))
    run = subprocess.run(["bash", "submit.sh"], cwd=tmp_path, capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (4, "")
    assert (tmp_path / "seen").read_text().split()[0] == "running"
    assert read_exit_code(tmp_path) == 4
    # A second launch of the same attempt finds the file taken and runs nothing.
    (tmp_path / "seen").unlink()
    assert subprocess.run(["bash", "submit.sh"], cwd=tmp_path).returncode == 75
    assert not (tmp_path / "seen").exists()


def test_a_running_unit_has_no_exit_code_yet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / EXIT_CODE_FILE).write_text("running 4242\n")
    assert read_exit_code(tmp_path) is None
    assert caplog.records == []  # not a garbled file worth a warning


def test_prepare_clears_an_earlier_attempt(tmp_path: Path) -> None:
    job = Job("again")
    job.working_dir = tmp_path
    job.cmd = ["true"]
    (tmp_path / EXIT_CODE_FILE).write_text("1\n")
    (tmp_path / "stdout").write_text("old")
    prepare(job, render_wrapper(job))
    assert read_exit_code(tmp_path) is None and not (tmp_path / "stdout").exists()


def test_unreadable_exit_code_file(tmp_path: Path) -> None:
    (tmp_path / EXIT_CODE_FILE).write_text("garbage")
    assert read_exit_code(tmp_path) is None


def test_subjobs_without_input_files_share_one_read_only_input_list(tmp_path: Path) -> None:
    job = Job("scan")
    job.working_dir = tmp_path
    job.cmd = ["true"]
    for i in range(3):
        job.create_subjob(i, args=[str(i)])
    (tmp_path / "data.root").write_text("x")
    job.subjobs[2].input_files = [tmp_path / "data.root"]
    for unit in job.subjobs.values():
        prepare(unit, render_wrapper(unit))
    lists = [unit.working_dir / INPUT_DATA_FILE for unit in job.subjobs.values()]
    assert [json.loads(path.read_text()) for path in lists[:2]] == [[], []]
    assert lists[0].stat().st_ino == lists[1].stat().st_ino  # one file, linked twice
    assert (tmp_path / SHARED_EMPTY_INPUT_LIST).stat().st_mode & 0o222 == 0
    assert json.loads(lists[2].read_text()) == [str(tmp_path / "data.root")]
    assert lists[2].stat().st_ino != lists[0].stat().st_ino
    # Preparing a unit again with input files gives it its own list; the shared one stays.
    job.subjobs[0].input_files = [tmp_path / "data.root"]
    prepare(job.subjobs[0], render_wrapper(job.subjobs[0]))
    assert json.loads(lists[0].read_text()) == [str(tmp_path / "data.root")]
    assert json.loads(lists[1].read_text()) == []


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    name=_TEXT.filter(bool),
    cmd=st.lists(_TEXT, min_size=1, max_size=3),
    args=st.lists(_TEXT, max_size=3),
    setup=st.lists(_TEXT, max_size=2),
    directives=st.lists(_TEXT, max_size=2),
    start_marker=st.booleans(),
)
def test_wrapper_filled_in_equals_the_whole_template_rendered(
    name: str,
    cmd: list[str],
    args: list[str],
    setup: list[str],
    directives: list[str],
    start_marker: bool,
) -> None:
    """The per-job cached wrapper, with a subjob's name and command put in, is byte for byte
    the template rendered for that subjob (whatever the name, command and setup hold)."""
    job = Job(name)
    job.cmd, job.args, job.setup_cmds = cmd, args, setup
    whole = render(
        "wrapper.sh.j2",
        directives=directives,
        start_marker=start_marker,
        running_marker=RUNNING_MARKER,
        lost_race_exit=75,
        name=name,
        exit_code_file=EXIT_CODE_FILE,
        setup_cmds=setup,
        command=job.full_command,
    )
    for _ in range(2):  # the second time from the cache
        assert (
            render_wrapper(job, directives, start_marker=start_marker, lost_race_exit=75) == whole
        )

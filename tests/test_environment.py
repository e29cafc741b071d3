"""Capturing, forwarding and checking a job's software environment (real shells, real venvs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobfleet import Job, Local, SpecError, monitor_jobs
from jobfleet.environment import (
    check_setup,
    clean_environment,
    detect_setup,
    forward_lines,
    set_lines,
)

AWKWARD = "two words, 'single' \"double\" $HOME `date` \\ ünï"


def _bash(lines: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "\n".join(lines)],
        capture_output=True, text=True, check=True, env=env or clean_environment(),
    ).stdout  # fmt: skip


def test_virtualenv_is_detected_and_activates(fresh_venv: Path) -> None:
    parts = detect_setup({"VIRTUAL_ENV": str(fresh_venv)}, python_prefix=sys.base_prefix)
    assert [p.kind for p in parts] == ["virtualenv"]
    out = _bash([*parts[0].commands, 'echo "$VIRTUAL_ENV"', "command -v jf-only-in-venv"])
    assert out.split() == [str(fresh_venv), str(fresh_venv / "bin" / "jf-only-in-venv")]


def test_unactivated_venv_of_this_python_is_detected(fresh_venv: Path) -> None:
    parts = detect_setup({}, python_prefix=str(fresh_venv))
    assert parts[0].commands == (f"source {fresh_venv}/bin/activate",)


def test_paths_missing_here_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"virtualenv activation script .* does not exist"):
        detect_setup({"VIRTUAL_ENV": str(tmp_path / "gone")}, python_prefix=sys.base_prefix)
    with pytest.raises(SpecError, match="conda environment"):
        detect_setup({"CONDA_PREFIX": str(tmp_path / "nope")}, python_prefix=sys.base_prefix)
    with pytest.raises(SpecError, match="site setup script"):
        detect_setup({}, site_setup=[f"source {tmp_path}/setup.sh"], python_prefix=sys.base_prefix)


def test_conda_prefix_without_conda_command_goes_first_on_path(tmp_path: Path) -> None:
    prefix = tmp_path / "conda-env"
    (prefix / "bin").mkdir(parents=True)
    (parts,) = detect_setup({"CONDA_PREFIX": str(prefix)}, python_prefix=sys.base_prefix)
    assert parts.kind == "conda"
    assert _bash([*parts.commands, 'echo "$PATH"']).startswith(f"{prefix}/bin:")


@pytest.mark.skipif(shutil.which("conda") is None, reason="conda is not installed here")
def test_real_conda_environment_activates() -> None:  # pragma: no cover - needs conda
    prefix = os.environ.get("CONDA_PREFIX")
    if not prefix:
        pytest.skip("no conda environment is active")
    (part,) = [p for p in detect_setup() if p.kind == "conda"]
    assert _bash([*part.commands, 'echo "$CONDA_PREFIX"']).strip() == prefix


def test_modules_are_loaded_again(tmp_path: Path) -> None:
    home = tmp_path / "modules"
    (home / "init").mkdir(parents=True)
    # A stand-in for Environment Modules' init script: defines `module`, as the real one does.
    (home / "init" / "bash").write_text('module() { echo "module $*"; }\n')
    env = {"LOADEDMODULES": "gcc/12:root/6.30", "MODULESHOME": str(home)}
    (part,) = detect_setup(env, python_prefix=sys.base_prefix)
    assert part.kind == "modules"
    assert _bash(list(part.commands)).strip() == "module load gcc/12 root/6.30"


@pytest.mark.skipif(
    not os.environ.get("MODULESHOME"), reason="environment modules / Lmod are not installed here"
)
def test_real_modules_command() -> None:  # pragma: no cover - needs environment modules
    (part,) = [p for p in detect_setup() if p.kind == "modules"]
    _bash(list(part.commands))


def test_site_setup_lines_come_first(tmp_path: Path) -> None:
    script = tmp_path / "release.sh"
    script.write_text("export RELEASE=42\n")
    parts = detect_setup({}, site_setup=[f"source {script}"], python_prefix=sys.base_prefix)
    assert _bash([*parts[0].commands, 'echo "$RELEASE"']).strip() == "42"


def test_forwarded_values_arrive_intact_and_never_override_the_worker() -> None:
    env = {"JF_AWKWARD": AWKWARD, "JF_SET_ON_WORKER": "mine", "BELLE2_A": "a", "BELLE2_B": "b"}
    lines = forward_lines(["JF_AWKWARD", "JF_SET_ON_WORKER", "BELLE2_*", "NO_SUCH_*"], env)
    worker = {**clean_environment(), "JF_SET_ON_WORKER": "worker"}
    out = _bash(
        [*lines, 'printf "%s\\n" "$JF_AWKWARD" "$JF_SET_ON_WORKER" "$BELLE2_A$BELLE2_B"'], worker
    )
    assert out.splitlines() == [AWKWARD, "worker", "ab"]
    with pytest.raises(SpecError, match="NOT_SET_ANYWHERE is not set here"):
        forward_lines(["NOT_SET_ANYWHERE"], env)


def test_set_values_and_bad_names() -> None:
    assert _bash([*set_lines({"A": AWKWARD, "N": 3}), 'echo "$A|$N"']).strip() == f"{AWKWARD}|3"
    with pytest.raises(SpecError, match="not a variable name"):
        set_lines({"A B": "x"})


def test_forwarded_values_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="jobfleet"):
        forward_lines(["JF_SECRET"], {"JF_SECRET": "hunter2"})
    assert "JF_SECRET" in caplog.text and "hunter2" not in caplog.text


def test_check_setup_reports_each_problem(tmp_path: Path, fresh_venv: Path) -> None:
    assert check_setup(["export X=1"], ["bash", "-c", "true"]) == []
    problems = check_setup(["false", "export X=1"], ["jf-only-in-venv"])
    assert problems[0] == "setup line 1 fails in a clean shell: false"
    assert "'jf-only-in-venv' is not found on the job's PATH" in problems[1]
    assert "alias or shell function" in problems[1]
    good = [f"source {fresh_venv}/bin/activate"]
    assert check_setup(good, ["jf-only-in-venv"]) == []
    assert check_setup(["true"], ["./run.sh"], sandbox_names=["run.sh"]) == []
    assert "not in the sandbox" in check_setup(["true"], ["./run.sh"])[0]
    assert "does not exist" in check_setup([], ["/no/such/program"])[0]


def _venv_job(tmp_path: Path, name: str) -> Job:
    job = Job(name)
    job.working_dir = tmp_path / name
    job.cmd = ["jf-only-in-venv"]
    return job


def test_console_script_runs_in_captured_venv_and_fails_clearly_without(
    tmp_path: Path, fresh_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(fresh_venv))
    captured, bare = _venv_job(tmp_path, "captured"), _venv_job(tmp_path, "bare")
    captured.append_current_setup_cmds()
    backend = Local()
    backend.submit([captured, bare])
    monitor_jobs([captured, bare], heartbeat=0.5)
    assert captured.status == "completed"
    assert (captured.working_dir / "stdout").read_text().strip() == f"prefix {fresh_venv}"
    assert bare.status == "failed" and bare.reason == "command not found (exit code 127)"


def test_backend_level_forwarding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JF_AWKWARD", AWKWARD)
    job = Job("fwd")
    job.working_dir = tmp_path / "fwd"
    job.cmd = ["bash", "-c", 'printf "%s" "$JF_AWKWARD|$JF_FIXED"']
    job.setup_cmds = ["export USER_OWN=1"]
    Local(backend_args={"forward_env": ["JF_AWK*"], "set_env": {"JF_FIXED": "$x"}}).submit(job)
    assert monitor_jobs([job], heartbeat=0.5) == 0
    assert (job.working_dir / "stdout").read_text() == f"{AWKWARD}|$x"
    assert job.setup_cmds[-1] == "export USER_OWN=1"  # the job's own setup runs last

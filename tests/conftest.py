"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import venv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["reliability_report"]


@pytest.fixture
def data_files(tmp_path: Path) -> Callable[[int], list[Path]]:
    def make(n: int) -> list[Path]:
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        files = []
        for i in range(n):
            path = folder / f"f{i:03d}.txt"
            path.write_text(f"file {i}\n")
            files.append(path)
        return files

    return make


def _slurm_answers() -> str | None:
    """None if a Slurm controller answers here, else why not."""
    import shutil
    import subprocess

    if shutil.which("sinfo") is None:
        return "sinfo not found (no Slurm client installed)"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if proc.returncode != 0:
        return f"sinfo failed: {(proc.stderr or proc.stdout).strip()[:200]}"
    if not any(s.startswith(("idle", "mix", "alloc")) for s in proc.stdout.split()):
        return f"no usable Slurm node (states: {proc.stdout.split()})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip (or, in CI, fail) when no Slurm cluster answers; start it with ci/slurm/start.sh."""
    import os

    why = _slurm_answers()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Slurm must run in CI but does not: {why}")
    pytest.skip(f"no Slurm cluster: {why}")


@pytest.fixture
def unimplemented_backend(monkeypatch: pytest.MonkeyPatch) -> str:
    """A backend name jobfleet knows of but has no driver for (whatever backends exist)."""
    from jobfleet.fleet import driver

    name = "futurebackend"
    monkeypatch.setattr(driver, "KNOWN_DRIVER_NAMES", (*driver.KNOWN_DRIVER_NAMES, name))
    return name


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real virtualenv holding a console script that exists nowhere else."""
    root = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    script = root / "bin" / "jf-only-in-venv"
    script.write_text(f"#!{root / 'bin' / 'python'}\nimport sys\nprint('prefix', sys.prefix)\n")
    script.chmod(0o755)
    yield root

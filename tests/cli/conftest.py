"""Fixtures for command-line tests: the real entry point, in process or as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobfleet.cli import main
from jobfleet.fleet import Fleet
from jobfleet.fleet.control import cancel
from jobfleet.fleet.unitfiles import STATE_FILE, read_state
from jobfleet.store import Store


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one error line, checked to be the only thing on stderr, with no traceback."""
        assert "Traceback" not in self.err and "Traceback" not in self.out
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.err!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh store for the test (via $JOBFLEET_DB); at the end, nothing is left running."""
    path = tmp_path / "jobfleet.db"
    monkeypatch.setenv("JOBFLEET_DB", str(path))
    monkeypatch.setenv("JOBFLEET_LEASE_TTL", "3")
    monkeypatch.setenv("COLUMNS", "200")
    yield path
    if path.exists():
        with Store(path) as store:
            fleet = Fleet(store)
            for record in store.list_jobs():
                cancel(fleet, record.id)  # background runners then see their jobs ended
    for path in tmp_path.rglob(STATE_FILE):
        state = read_state(path.parent)
        if state is not None and state.pid > 0:
            with contextlib.suppress(OSError):
                os.killpg(state.pid, signal.SIGKILL)


@pytest.fixture
def jf(db: Path, capfd: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``jobfleet ARGS...`` in this process through :func:`jobfleet.cli.main`."""

    def run(*args: str) -> Result:
        capfd.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capfd.readouterr()
        return Result(code, out, err)

    return run


def jobfleet_process(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start the installed ``jobfleet`` command (the console script) as a subprocess."""
    exe = Path(sys.executable).with_name("jobfleet")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "jobfleet.cli"]
    return subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def run_jobfleet(*args: str, timeout: float = 60.0) -> Result:
    proc = jobfleet_process(*args)
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a TOML spec running ``script`` (bash; ``$1`` is the subjob id) in ``n`` subjobs."""

    def write(name: str, script: str, n: int = 1, *, extra: str = "", backend: str = "") -> Path:
        """``n=0``: no [split], one job without subjobs."""
        split = f"[split.arguments]\nrange = [0, {n}]\n" if n else ""
        backend = backend or 'name = "local"'
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'name = "{name}"\n'
            f"cmd = [\"bash\", \"-c\", '''{script}''', \"unit\"]\n"
            f"{extra}\n{split}\n[backend]\n{backend}\n",
            encoding="utf-8",
        )
        return path

    return write

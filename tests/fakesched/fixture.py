"""The ``fake_scheduler`` fixture: a fake scheduler daemon with its command shims on ``PATH``.

The simplest way to use it from a test module is a fixture of its own name::

    from fakesched.fixture import FakeHandle, fake_scheduler_fixture

    condor = fake_scheduler_fixture("htcondor", queue_delay=0.1)

    def test_x(condor: FakeHandle) -> None:
        condor.configure(fail_rate=0.3)
        ...

The generic ``fake_scheduler`` fixture takes the personality from a
``personality`` fixture or from indirect parametrisation
(``@pytest.mark.parametrize("fake_scheduler", ["lsf"], indirect=True)``); import
it with ``# noqa: F401`` and name it in the test's arguments with ``# noqa: F811``.

:func:`running_fake` does the same without pytest (e.g. for a benchmark).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fakesched.core import STATE_ENV, FakeScheduler, load_personality
from fakesched.shims import PACKAGE_ROOT, install_shims

__all__ = ["FakeHandle", "fake_scheduler", "fake_scheduler_fixture", "running_fake"]


class FakeHandle(FakeScheduler):
    """A running fake: its state (all :class:`FakeScheduler` verbs), shims and daemon."""

    def __init__(
        self, personality: str, state_dir: Path, bin_dir: Path, daemon: subprocess.Popen[bytes]
    ) -> None:
        super().__init__(state_dir)
        self.personality = personality
        self.bin_dir = bin_dir
        self.daemon = daemon

    def run(self, command: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Call a command through its shim, as a backend would."""
        return subprocess.run(
            [str(self.bin_dir / command), *args],
            input=stdin, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def daemon_log(self) -> str:
        return (self.state_dir / "daemon.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the daemon (it kills running jobs); fail if any job process survives."""
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        groups = {job.id: job.pid for job in self.jobs() if job.pid and job.state == "running"}
        deadline = time.monotonic() + 5  # killed members may take a moment to be reaped
        while any(_alive(g) for g in groups.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = [jid for jid, group in groups.items() if _alive(group)]
        for jid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(groups[jid], signal.SIGKILL)
        if leftovers:
            raise AssertionError(f"job processes outlived the fake daemon: {leftovers}")
        if self.daemon.returncode not in (0, -signal.SIGTERM):
            raise AssertionError(
                f"fake daemon exited with {self.daemon.returncode}:\n{self.daemon_log()}"
            )


def _alive(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def running_fake(personality: str, root: Path, **config: Any) -> Iterator[FakeHandle]:
    """Start a fake ``personality`` scheduler under ``root``; stop it (and its jobs) after."""
    module = load_personality(personality)
    state_dir, bin_dir = root / "state", root / "bin"
    state_dir.mkdir(parents=True, exist_ok=True)
    FakeScheduler(state_dir).configure(**{**getattr(module, "DEFAULT_CONFIG", {}), **config})
    install_shims(bin_dir, personality, state_dir)
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    with open(state_dir / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "fakesched", "daemon", str(state_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )  # fmt: skip
    handle = FakeHandle(personality, state_dir, bin_dir, daemon)
    try:
        deadline = time.monotonic() + 20
        while not (state_dir / "daemon.pid").exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake daemon did not start:\n{handle.daemon_log()}")
            time.sleep(0.01)
        yield handle
    finally:
        handle.stop()


def _pythonpath() -> str:
    parts: Sequence[str] = [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return os.pathsep.join(parts)


def _installed(
    personality: str, root: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]
) -> Iterator[FakeHandle]:
    with running_fake(personality, root, **config) as handle:
        monkeypatch.setenv("PATH", f"{handle.bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("PYTHONPATH", _pythonpath())
        monkeypatch.setenv(STATE_ENV, str(handle.state_dir))
        yield handle


@pytest.fixture
def fake_scheduler(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHandle]:
    """A fake of the scheduler named by ``request.param`` or the ``personality`` fixture."""
    personality = getattr(request, "param", None) or request.getfixturevalue("personality")
    yield from _installed(str(personality), tmp_path / "fakesched", monkeypatch, {})


def fake_scheduler_fixture(personality: str, **config: Any) -> Any:
    """A fixture (assign it to a module-level name) running a fake ``personality``
    with these config values, shims first on ``PATH``; stopped after the test."""

    @pytest.fixture
    def fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHandle]:
        yield from _installed(personality, tmp_path / "fakesched", monkeypatch, dict(config))

    return fixture

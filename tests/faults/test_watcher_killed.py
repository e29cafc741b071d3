"""Every batch backend through the command line: the watcher is SIGKILLed, a new one finishes.

The schedulers are the stateful fakes of tests/fakesched (real Slurm and Grid
Engine have their own tests); the store must come out exact: every subjob
completed once, none lost, none run twice (each writes a marker line).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401
from helpers import wait_until

from .conftest import jobfleet_process, run_jobfleet

N = 12

SPEC = """
name = "killme"
cmd = ["bash", "-c", "echo once >> {marks}/$1.mark; sleep 0.3", "unit"]
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "{backend}"
poll_interval = 0.2
{options}
"""

# (backend name in jobfleet, fake personality, extra backend options)
CASES = {
    "htcondor": ("htcondor", "htcondor", ""),
    "lsf": ("lsf", "lsf", ""),
    "openpbs": ("pbs", "pbs", 'flavour = "openpbs"'),
    "torque": ("pbs", "pbs", 'flavour = "torque"'),
    "sge": ("sge", "sge", ""),
    "dirac": ("dirac", "dirac", ""),
}


@pytest.fixture(params=list(CASES))
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, str]]:
    name, personality, options = CASES[request.param]
    if request.param in ("openpbs", "torque"):
        monkeypatch.setenv("FAKESCHED_PBS_FLAVOUR", request.param)
    yield name, personality, options


@pytest.fixture
def personality(backend: tuple[str, str, str]) -> str:
    return backend[1]


def test_killed_watcher_loses_nothing(
    backend: tuple[str, str, str],
    fake_scheduler: FakeHandle,  # noqa: F811
    db: Path,
    tmp_path: Path,
) -> None:
    name, _, options = backend
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = tmp_path / "killme.toml"
    spec.write_text(SPEC.format(marks=marks, n=N, backend=name, options=options))
    submitted = run_jobfleet("submit", str(spec))
    assert submitted.code == 0, submitted.err

    first = jobfleet_process("watch", "killme", "--interval", "0.2", "--quiet")
    wait_until(lambda: len(list(marks.glob("*.mark"))) >= 3, timeout=60, what="some subjobs run")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = run_jobfleet("watch", "killme", "--interval", "0.2", "--quiet", timeout=180)
    assert second.code == 0, second.err
    status = json.loads(run_jobfleet("status", "killme", "--json").out)
    assert status["counts"] == {"completed": N}
    assert all(s["attempts"] == 1 for s in status["subjobs"])
    lines = {p.stem: p.read_text().splitlines() for p in marks.glob("*.mark")}
    assert lines == {str(i): ["once"] for i in range(N)}

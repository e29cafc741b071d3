"""The monitoring process is SIGKILLed while subjobs run; a new ``jobfleet watch`` finishes.

Locally the monitoring process is whoever holds the ``poll:local`` lease: first
the background runner ``jobfleet submit`` leaves behind, then each ``jobfleet
watch`` started after a kill (it takes over once the dead holder's lease
expires). On Slurm (the real cluster) it is the ``jobfleet watch`` polling
``squeue``. Every subjob writes its exit code as a line to its own marker
file (a second run would add a second line), and every 50th exits 3, so each
stored outcome can be checked against what the subjob itself says. The fakes of
tests/fakesched get the same with a single kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.conftest import db  # noqa: F401
from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401
from helpers import wait_until
from jobfleet.store import Store
from reliability_report import Reliability

from ._fakes import fake_case_fixture, personality  # noqa: F401
from ._support import jobfleet_process, marker_lines, run_jobfleet

N = 500
KILLS = 3
SEED = int(os.environ.get("JOBFLEET_FAULT_SEED", "20261128"))

MIXED = """
name = "{name}"
cmd = ["bash", "-c", '''
c=0; [ $(( $1 % 50 )) -eq 7 ] && c=3
echo $c >> {marks}/$1.mark; sleep 0.0$(( $1 % 5 )); exit $c''', "unit"]
working_dir = "{work}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
{backend}
"""


def _holder(db_path: Path, backend: str) -> int | None:
    """Pid of the process holding ``poll:<backend>`` (owners are ``host:pid:tag``)."""
    with Store(db_path) as store:
        owner = store.lease_holder(f"poll:{backend}")
    return None if owner is None else int(owner.split(":")[1])


def _kill_monitors(
    db_path: Path,
    backend: str,
    marks: Path,
    start_watcher: Callable[[], subprocess.Popen[str]],
    in_poll: tuple[str, Callable[[], bool]],
    rng: random.Random,
) -> tuple[list[str], subprocess.Popen[str]]:
    """SIGKILL the lease holder ``KILLS`` times; after each kill start a new watcher.

    The second kill waits for ``in_poll`` (the holder is at work right now); the
    others come after a random pause. Returns what each kill hit and the last watcher.
    """
    killed: list[int] = []
    ours: dict[int, subprocess.Popen[str]] = {}
    hits = []
    for k in range(KILLS):
        pid = wait_until(
            lambda: (p := _holder(db_path, backend)) not in (None, *killed) and p,
            timeout=60,
            what="a live process holding the poll lease",
        )
        if k == 1:
            wait_until(in_poll[1], timeout=60, what="the holder at work")
        else:
            time.sleep(rng.uniform(0.2, 1.5))  # the fault's random moment, not a wait
        os.kill(pid, signal.SIGKILL)
        done = len(marker_lines(marks))
        hits.append(f"kill {k + 1} {in_poll[0] if k == 1 else 'at random'}: {done}/{N} started")
        killed.append(pid)
        if pid in ours:
            ours.pop(pid).wait(timeout=10)
        watcher = start_watcher()
        ours[watcher.pid] = watcher
    assert len(ours) == 1
    return hits, next(iter(ours.values()))


def _check_outcomes(
    db_path: Path, name: str, marks: Path
) -> tuple[list[int], list[int], list[int]]:
    """Subjobs lost (no final status, or not matching their marker), run twice, and all ids."""
    with Store(db_path) as store:
        rows = store.subjobs(store.get_job(name).id)
    runs = {int(p.stem): p.read_text().split() for p in marks.glob("*.mark")}
    lost, twice = [], []
    for row in rows:
        said = runs.get(row.subjob_id, [])
        if len(said) > 1 or row.attempt != 1:
            twice.append(row.subjob_id)
        code = int(said[0]) if said else None
        expected = ("completed", 0) if code == 0 else ("failed", code)
        if code is None or (str(row.status), row.exit_code) != expected:
            lost.append(row.subjob_id)
    return lost, twice, [r.subjob_id for r in rows]


def test_local_runner_killed_three_times(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """500 local subjobs (1 in 50 exits 3); the runner and two successor watchers SIGKILLed
    at seeded random moments (one right after a launch); a new watch ends all truly, once."""
    rng = random.Random(SEED)
    marks, work = tmp_path / "marks", tmp_path / "work"
    marks.mkdir()
    spec = tmp_path / "local.toml"
    backend = 'name = "local"\nmax_processes = 4'
    spec.write_text(MIXED.format(name="killlocal", marks=marks, work=work, n=N, backend=backend))
    submitted = run_jobfleet("submit", str(spec))
    assert submitted.code == 0, submitted.err

    def launched_now() -> bool:
        # A new marker appears: the holder has just launched a unit.
        before = len(marker_lines(marks))
        return wait_until(lambda: len(marker_lines(marks)) > before, timeout=30) is not None

    def start() -> subprocess.Popen[str]:
        return jobfleet_process("watch", "killlocal", "--quiet", "--interval", "0.2")

    hits, last = _kill_monitors(
        db, "local", marks, start, ("right after a launch", launched_now), rng
    )
    _, err = last.communicate(timeout=240)
    lost, twice, ids = _check_outcomes(db, "killlocal", marks)
    reliability.record(
        backend="local",
        cases=len(ids),
        faults=KILLS,
        lost=len(lost),
        duplicated=len(twice),
        detail=f"monitoring process SIGKILLed {KILLS} times, seed {SEED}; " + "; ".join(hits),
    )
    assert last.returncode == 1, err  # 10 subjobs fail on purpose
    assert "Traceback" not in err
    assert all(int(h.split(": ")[1].split("/")[0]) < N for h in hits)  # each kill hit live work
    assert ids == list(range(N))
    assert (lost, twice) == ([], [])


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_watcher_killed_three_times(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """500 Slurm subjobs in one array (1 in 50 exits 3); the watcher SIGKILLed 3 times at
    seeded random moments, one during its squeue call; a new watch ends all truly, once."""
    rng = random.Random(SEED + 1)
    marks, work = tmp_path / "marks", tmp_path / "work"
    marks.mkdir()
    name = f"killslurm{os.getpid()}"
    spec = tmp_path / "slurm.toml"
    backend = 'name = "slurm"\npoll_interval = 0.5\nmin_poll_interval = 0.5'
    spec.write_text(MIXED.format(name=name, marks=marks, work=work, n=N, backend=backend))
    # An squeue wrapper notes each status query, so one kill can land inside a poll.
    real = subprocess.run(["which", "squeue"], capture_output=True, text=True).stdout.strip()
    calls, bin_dir = tmp_path / "squeue-calls", tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(
        f'#!/bin/bash\ncase "$*" in *--Format=*) echo $$ >> {calls};; esac\nexec {real} "$@"\n'
    )
    (bin_dir / "squeue").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    submitted = run_jobfleet("submit", str(spec))
    assert submitted.code == 0, submitted.err

    def in_squeue() -> bool:
        before = len(calls.read_text().split()) if calls.exists() else 0
        wait_until(
            lambda: calls.exists() and len(calls.read_text().split()) > before,
            timeout=30,
            step=0.005,
        )
        return True

    def start() -> subprocess.Popen[str]:
        return jobfleet_process("watch", name, "--quiet", "--interval", "0.5", env=env)

    first = start()
    hits, last = _kill_monitors(db, "slurm", marks, start, ("during squeue", in_squeue), rng)
    first.wait(timeout=10)
    _, err = last.communicate(timeout=280)
    lost, twice, ids = _check_outcomes(db, name, marks)
    with Store(db) as store:
        native = {r.native_id for r in store.subjobs(store.get_job(name).id)}
    array_ids = sorted({str(n).split("_")[0] for n in native})

    def accounted() -> list[tuple[str, str, str]] | None:
        rows = _sacct(array_ids)
        return rows if len(rows) >= N else None

    sacct = wait_until(accounted, timeout=60, what="Slurm accounting for every task")
    in_sacct = [row[0] for row in sacct]
    twice += [t for t in set(in_sacct) if in_sacct.count(t) > 1]
    reliability.record(
        backend="slurm",
        cases=len(ids),
        faults=KILLS,
        lost=len(lost) + len(native - set(in_sacct)),
        duplicated=len(twice),
        detail=f"watcher SIGKILLed {KILLS} times, seed {SEED + 1}; " + "; ".join(hits),
    )
    assert last.returncode == 1, err  # 10 subjobs fail on purpose
    assert len(array_ids) == 1  # one sbatch for all 500
    assert all(int(h.split(": ")[1].split("/")[0]) < N for h in hits)
    assert ids == list(range(N))
    assert (lost, twice) == ([], [])
    assert set(in_sacct) == native
    assert {(t, code) for t, _, code in sacct} == {
        (f"{array_ids[0]}_{i}", "3:0" if i % 50 == 7 else "0:0") for i in range(N)
    }


def _sacct(array_ids: list[str]) -> list[tuple[str, str, str]]:
    """``(task id, state, exit code)`` of every task of the arrays, from Slurm's accounting."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(array_ids)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [tuple(line.split("|")) for line in out.splitlines() if line]
    return [(r[0], r[1], r[2]) for r in rows if r[1] not in ("PENDING", "RUNNING")]


# -- the fakes: one kill each -------------------------------------------------------------------

FAKE_N = 12

FAKE_SPEC = """
name = "killme"
cmd = ["bash", "-c", "echo once >> {marks}/$1.mark; sleep 0.3", "unit"]
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "{backend}"
poll_interval = 0.2
{options}
"""

fake_case = fake_case_fixture()


def test_killed_watcher_loses_nothing(
    fake_case: tuple[str, str, str],
    fake_scheduler: FakeHandle,  # noqa: F811
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Every fake batch backend: ``jobfleet watch`` SIGKILLed once 3 of 12 subjobs in;
    a new watch completes every subjob exactly once."""
    name, fake, options = fake_case
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = tmp_path / "killme.toml"
    spec.write_text(FAKE_SPEC.format(marks=marks, n=FAKE_N, backend=name, options=options))
    submitted = run_jobfleet("submit", str(spec))
    assert submitted.code == 0, submitted.err

    first = jobfleet_process("watch", "killme", "--interval", "0.2", "--quiet")
    wait_until(lambda: len(list(marks.glob("*.mark"))) >= 3, timeout=60, what="some subjobs run")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = run_jobfleet("watch", "killme", "--interval", "0.2", "--quiet", timeout=180)
    status = json.loads(run_jobfleet("status", "killme", "--json").out)
    runs = marker_lines(marks)
    flavour = options.split('"')[1] if options else fake  # openpbs / torque
    reliability.record(
        backend=f"{flavour} (fake)",
        cases=FAKE_N,
        faults=1,
        lost=FAKE_N - status["counts"].get("completed", 0),
        duplicated=sum(1 for n in runs.values() if n > 1),
        detail="watcher SIGKILLed once, after 3 subjobs started",
    )
    assert second.code == 0, second.err
    assert status["counts"] == {"completed": FAKE_N}
    assert all(s["attempts"] == 1 for s in status["subjobs"])
    assert runs == dict.fromkeys(range(FAKE_N), 1)

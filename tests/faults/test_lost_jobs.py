"""The scheduler loses running jobs (killed, forgotten, no exit code file): they end "lost".

A lost unit can only be told apart from one whose exit code file is late by
waiting; the wait is the job's own ``exit_code_grace`` backend option, which the
watcher must honour (it used to poll with default options and wait 300 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli.conftest import db, run_jobfleet  # noqa: F401
from fakesched.fixture import FakeHandle, fake_scheduler  # noqa: F401
from helpers import wait_until
from reliability_report import Reliability

from ._fakes import fake_case_fixture, personality  # noqa: F401
from ._wrapped import marker_lines, write_spec

N = 6
LOST = 2
# Each subjob waits (up to 120 s) for the test's go-ahead, so the ones to lose are
# surely still running when the scheduler loses them.
SCRIPT = (
    "echo once >> {marks}/$1.mark; "
    "for i in $(seq 1200); do [ -e {marks}/go ] && exit 0; sleep 0.1; done; exit 9"
)

fake_case = fake_case_fixture("lsf", "dirac")


def test_lost_jobs_end_after_the_jobs_own_grace(
    fake_case: tuple[str, str, str],
    fake_scheduler: FakeHandle,  # noqa: F811
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Fake scheduler losing 2 of 6 running subjobs (SIGKILLed and forgotten, no exit code
    file); with `exit_code_grace = 2` in the spec they end failed "lost" and the rest
    complete, well before the default 300 s grace."""
    backend, fake, options = fake_case
    fake_scheduler.configure(max_running=N)  # all at once: each waits for the go-ahead
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = write_spec(
        tmp_path / "lossy.toml", "lossy", backend, N, SCRIPT.format(marks=marks),
        options=f"exit_code_grace = 2\n{options}",
    )  # fmt: skip
    assert run_jobfleet("submit", str(spec), timeout=120).code == 0
    wait_until(lambda: len(marker_lines(marks)) == N, timeout=60, what="every subjob started")
    running = sorted(j.id for j in fake_scheduler.jobs() if j.state == "running")
    for native_id in running[:LOST]:
        fake_scheduler.lose(native_id)
    gone = set(running[:LOST])
    wait_until(lambda: not gone & {j.id for j in fake_scheduler.jobs()}, timeout=60,
               what="the scheduler to lose them")  # fmt: skip
    (marks / "go").touch()
    watched = run_jobfleet("watch", "lossy", "--interval", "0.2", "--quiet", timeout=120)
    status: dict[str, Any] = json.loads(run_jobfleet("status", "lossy", "--json").out)

    lost = [s for s in status["subjobs"] if (s["reason"] or "").startswith("lost")]
    runs = marker_lines(marks)
    reliability.record(
        backend=f"{fake} (fake)", cases=N, unit="subjobs", faults=LOST,
        lost=N - len(lost) - status["counts"].get("completed", 0),
        duplicated=sum(1 for c in runs.values() if c > 1),
        detail=f"{LOST} running subjobs lost by the scheduler; they end failed 'lost'",
    )  # fmt: skip
    assert len(running) >= LOST
    assert watched.code == 1, watched.err  # some failed
    assert len(lost) == LOST and all(s["status"] == "failed" for s in lost)
    assert status["counts"] == {"completed": N - LOST, "failed": LOST}
    assert runs == dict.fromkeys(range(N), 1)

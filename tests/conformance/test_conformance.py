"""The same jobs on every backend give the same subjobs, argv, outputs, statuses and reasons.

Each test runs once per backend of :data:`conformance.cases.BACKENDS` and
checks one thing against values defined once in :mod:`conformance.cases`;
the jobs themselves ran all at once (see :mod:`conformance.conftest`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cases import AWKWARD_SUBJOBS, EXIT_CODE, expected_argv, expected_outputs
from conformance.driver import DEADLINE, Outcome
from helpers import wait_until
from reliability_report import Reliability

N = len(AWKWARD_SUBJOBS)
# A test may wait for its backend's whole run (all start together when the first test does).
pytestmark = pytest.mark.timeout(DEADLINE + 120)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _name(outcome: Outcome) -> str:
    return f"{outcome.case.id} ({outcome.path})"


def _twice(outcome: Outcome, tags: list[str]) -> int:
    return sum(1 for tag in tags if len(outcome.runs(tag)) > 1)


def test_subjobs_follow_the_spec(outcome: Outcome, reliability: Reliability) -> None:
    """The job with awkward arguments has one subjob per ``values`` entry, each run once."""
    subjobs = outcome.subjobs("ok")
    ids = [s["id"] for s in subjobs]
    tags = [args[0] for args in AWKWARD_SUBJOBS]
    missing = [tag for tag in tags if not outcome.runs(tag)]
    reliability.record(
        backend=_name(outcome), cases=N, unit="subjobs",
        lost=len(missing) + abs(N - len(ids)), duplicated=_twice(outcome, tags),
        detail=f"subjob ids {ids}; run took {outcome.seconds:.0f} s",
    )  # fmt: skip
    assert ids == list(range(N))
    assert outcome.status["ok"]["total"] == N
    assert missing == []
    assert [len(outcome.runs(tag)) for tag in tags] == [1] * N
    assert [s["attempts"] for s in subjobs] == [1] * N


def test_arguments_reach_the_program_byte_for_byte(
    outcome: Outcome, reliability: Reliability
) -> None:
    """Every subjob's program got exactly the spec's arguments (quotes, $, `, ;, newlines...)."""
    got = {}
    for i in range(N):
        path = outcome.output_dir("ok") / str(i) / "argv.bin"
        got[i] = path.read_bytes() if path.exists() else None
    wrong = [i for i in range(N) if got[i] != expected_argv(i)]
    reliability.record(
        backend=_name(outcome), cases=N, unit="subjobs", lost=len(wrong),
        detail="argv compared as NUL-separated bytes",
    )  # fmt: skip
    assert {i: got[i] for i in wrong} == {i: expected_argv(i) for i in wrong}
    assert not list(outcome.root.rglob("pwned"))  # no argument was run as a command


def test_outputs_are_collected(outcome: Outcome, reliability: Reliability) -> None:
    """``output_dir/<subjob>`` holds exactly the files of ``output_patterns``, as written."""
    collected = {}
    for i in range(N):
        folder = outcome.output_dir("ok") / str(i)
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        collected[i] = {p.name: p.read_bytes() for p in files}
    wrong = [i for i in range(N) if collected[i] != expected_outputs(i)]
    reliability.record(backend=_name(outcome), cases=N, unit="subjobs", lost=len(wrong))
    assert {i: collected[i] for i in wrong} == {i: expected_outputs(i) for i in wrong}


def test_final_statuses_and_exit_codes(outcome: Outcome, reliability: Reliability) -> None:
    """Completed subjobs exit 0; the failing ones exit 3 and 137 (SIGKILL); job statuses agree."""
    got = {
        "ok": [(s["status"], s["exit_code"]) for s in outcome.subjobs("ok")],
        "exit": [(s["status"], s["exit_code"]) for s in outcome.subjobs("exit")],
        "jobs": {role: outcome.status[role]["status"] for role in outcome.status},
    }
    expected = {
        "ok": [("completed", 0)] * N,
        "exit": [("failed", EXIT_CODE), ("failed", 128 + 9)],
        "jobs": {"ok": "completed", "exit": "failed", "timeout": "failed", "cancel": "failed"},
    }
    units, wanted = got["ok"] + got["exit"], expected["ok"] + expected["exit"]
    wrong = sum(a != b for a, b in zip(units, wanted, strict=False)) + abs(len(units) - len(wanted))
    reliability.record(backend=_name(outcome), cases=N + 2, unit="subjobs", lost=wrong)
    assert got == expected


def test_nonzero_exit_reasons(outcome: Outcome, reliability: Reliability) -> None:
    """Exit 3 fails with reason ``exit code 3``, SIGKILL with ``killed by signal 9 (SIGKILL)``."""
    got = [(s["status"], s["exit_code"], s["reason"]) for s in outcome.subjobs("exit")]
    expected = [
        ("failed", EXIT_CODE, f"exit code {EXIT_CODE}"),
        ("failed", 137, "killed by signal 9 (SIGKILL)"),
    ]
    runs = [outcome.runs(tag) for tag in ("exit", "kill")]
    reliability.record(
        backend=_name(outcome), cases=2, unit="subjobs",
        lost=sum(a != b for a, b in zip(got, expected, strict=False)) + abs(len(got) - 2),
        duplicated=sum(len(r) > 1 for r in runs),
    )  # fmt: skip
    assert got == expected
    assert [len(r) for r in runs] == [1, 1]  # ran once each, not retried


def _stopped(outcome: Outcome, role: str) -> tuple[dict[str, object], list[int]]:
    """The unit and the pids of its runs, once none of them is alive any more."""
    [sub] = outcome.subjobs(role)
    pids = outcome.runs(role)
    wait_until(lambda: not any(_alive(p) for p in pids), timeout=30, what=f"{role} to stop")
    return sub, pids


def test_walltime_exceeded_reason(outcome: Outcome, reliability: Reliability) -> None:
    """A program outliving its walltime is stopped by the backend: failed, reason ``timeout``."""
    sub, pids = _stopped(outcome, "timeout")
    finished = (outcome.marks / "timeout.finished").exists()
    reliability.record(
        backend=_name(outcome), cases=1, unit="subjobs",
        lost=int(sub["reason"] != "timeout" or finished or not pids),
        duplicated=int(len(pids) > 1),
        detail=f"walltime {outcome.case.walltime}; exit code {sub['exit_code']}",
    )  # fmt: skip
    assert (sub["status"], sub["reason"]) == ("failed", "timeout")
    # Killed by the limit's signal: 130/143 when the wrapper caught SIGINT/SIGTERM,
    # 137 for SIGKILL (Grid Engine's h_rt), or no exit code at all.
    assert sub["exit_code"] is None or sub["exit_code"] > 128, sub
    assert len(pids) == 1 and not finished


def test_cancel_reason(outcome: Outcome, reliability: Reliability) -> None:
    """A running program cancelled with ``jobfleet cancel`` stops: failed, reason ``cancelled``."""
    sub, pids = _stopped(outcome, "cancel")
    finished = (outcome.marks / "cancel.finished").exists()
    reliability.record(
        backend=_name(outcome), cases=1, unit="subjobs",
        lost=int(sub["reason"] != "cancelled" or finished or not pids),
        duplicated=int(len(pids) > 1),
    )  # fmt: skip
    assert (sub["status"], sub["reason"]) == ("failed", "cancelled")
    assert len(pids) == 1 and not finished

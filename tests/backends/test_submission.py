"""Tagged submission: the tag is handed out before the call, and a lost answer is looked up."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from jobfleet import Job
from jobfleet.backends.slurm import Slurm, parse_config
from jobfleet.backends.submission import submit_tagged, wait_for_room
from jobfleet.commands import CommandResult
from jobfleet.errors import BackendError, CommandError

DATA = Path(__file__).parent / "data" / "slurm"


class ScriptedSlurm(Slurm):
    """The real Slurm backend; its commands answer from a script instead of a cluster."""

    def __init__(self, answers: dict[str, list[Any]], **backend_args: Any) -> None:
        super().__init__(backend_args=backend_args)
        self.answers = answers
        self.calls: list[list[str]] = []
        self.noted: list[tuple[str, int, list[str]]] = []  # (tag, calls so far, unit names)
        self.on_submitting = lambda tag, units, offset: self.noted.append(
            (tag, len(self.calls), [u.name for u in units])
        )

    def config(self) -> dict[str, str]:
        return parse_config((DATA / "scontrol_show_config.out").read_text())

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.calls.append(list(argv))
        answer = self.answers[argv[0]].pop(0)
        if callable(answer):
            answer = answer(argv)
        if isinstance(answer, CommandError):
            raise answer
        return CommandResult(tuple(argv), 0, answer, "", 0.0)


def _tag_of(argv: Sequence[str]) -> str:
    return next(a.split(":", 1)[1] for a in argv if a.startswith("--comment=jobfleet:"))


def _lost(argv: Sequence[str]) -> CommandError:
    return CommandError(argv, 1, "", "sbatch: error: Socket timed out", transient=True)


def test_the_tag_is_noted_before_the_scheduler_is_asked(tmp_path: Path) -> None:
    backend = ScriptedSlurm({"sbatch": ["41\n"]})
    unit = Job("one")
    unit.working_dir = tmp_path / "one"
    assert submit_tagged(backend, tmp_path / "one.sh", unit=unit) == "41"
    [(tag, calls_before, names)] = backend.noted
    assert calls_before == 0 and names == ["one"]
    assert _tag_of(backend.calls[0]) == tag


def test_a_lost_answer_is_found_by_its_tag_not_sent_again(tmp_path: Path) -> None:
    sent: list[str] = []

    def lost_after_reaching_slurm(argv: Sequence[str]) -> CommandError:
        sent.append(_tag_of(argv))
        return _lost(argv)

    def queue_lists_it(argv: Sequence[str]) -> str:
        return f"40|jobfleet:other\n42|jobfleet:{sent[0]}\n"

    backend = ScriptedSlurm({"sbatch": [lost_after_reaching_slurm], "squeue": [queue_lists_it]})
    assert submit_tagged(backend, tmp_path / "x.sh") == "42"
    assert [c[0] for c in backend.calls] == ["sbatch", "squeue"]  # one sbatch only


def test_a_call_that_never_arrived_is_sent_again(tmp_path: Path) -> None:
    answers: dict[str, list[Any]] = {
        "sbatch": [_lost, "43\n"],
        "squeue": ["40|jobfleet:other\n"],
        "sacct": [""],  # not in accounting either
    }
    backend = ScriptedSlurm(answers)
    assert submit_tagged(backend, tmp_path / "x.sh") == "43"
    assert [c[0] for c in backend.calls] == ["sbatch", "squeue", "sacct", "sbatch"]
    assert _tag_of(backend.calls[0]) == _tag_of(backend.calls[3])  # the same tag both times


def test_a_permanent_error_is_not_retried(tmp_path: Path) -> None:
    denied = CommandError(["sbatch"], 1, "", "sbatch: error: invalid partition specified")
    backend = ScriptedSlurm({"sbatch": [denied]})
    with pytest.raises(BackendError, match="invalid partition"):
        submit_tagged(backend, tmp_path / "x.sh")
    assert len(backend.calls) == 1


def test_submission_waits_for_room_under_the_global_limit() -> None:
    queued = ["\n".join(f"{i}" for i in range(n)) + "\n" for n in (5, 4, 3)]
    backend = ScriptedSlurm(
        {"squeue": queued}, global_job_limit=5, sleep_between_submission_checks=0
    )
    wait_for_room(backend, 2)  # 5 + 2 and 4 + 2 are over the limit, 3 + 2 is not
    assert len(backend.calls) == 3

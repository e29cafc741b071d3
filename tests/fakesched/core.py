"""A stateful fake batch scheduler that really runs jobs, for testing scheduler backends.

Real HTCondor, LSF, PBS, Grid Engine or DIRAC servers cannot run in the test
environment, so the backends are tested against this fake. It has three parts:

* **State** -- a directory holding ``state.json`` (every job the fake knows) and
  ``config.json`` (the misbehaviour switches), both read and written only under
  an ``fcntl`` lock on ``lock``, so the daemon and any number of command shims
  can use them at once.
* **The daemon** (:func:`fakesched.daemon.run_daemon`, started by the ``fake_scheduler`` fixture
  as ``python -m fakesched daemon STATE_DIR``) moves queued jobs to running
  after ``queue_delay`` seconds, runs at most ``max_running`` at a time, each as
  a real process in its own process group (``argv`` in ``cwd`` with exactly
  ``env``, stdout/stderr to the given files), records exit codes or signals,
  and applies the ``forget_finished`` and ``lose`` switches.
* **Commands** -- tiny shims on ``PATH`` (see :mod:`fakesched.shims`) run
  ``python -m fakesched PERSONALITY COMMAND ARGS...``; :func:`main` may fail the
  call on purpose (``fail_rate``) and otherwise hands it to the personality.

Personality interface
---------------------
A scheduler's personality is a module ``tests/fakesched/<name>.py``; adding one
needs no change here. It defines:

``COMMANDS: Mapping[str, Handler]``
    Command name (``condor_submit``, ``bjobs``, ``qsub``...) -> handler
    ``handler(fake: FakeScheduler, args: list[str]) -> int``. The handler reads
    ``sys.stdin`` and the current directory / environment like the real tool,
    writes the real tool's output to ``sys.stdout`` / ``sys.stderr`` and returns
    the exit status. A shim is installed for every name.
``transient_error(command: str) -> tuple[str, int]``
    The message (printed on stderr) and exit status of a transient failure of
    ``command``, as the real scheduler prints it; used by ``fail_rate``.
``DEFAULT_CONFIG: Mapping[str, Any]`` (optional)
    Config values this scheduler starts with (e.g. ``{"first_number": 1000}``).

Handlers use the generic verbs of :class:`FakeScheduler`:

* :meth:`~FakeScheduler.submit` ``(tasks, make_id)`` -> the new :class:`FakeJob`
  records (``tasks`` may also be a function of the submission number). A
  :class:`Task` says what to run: ``argv`` (usually ``["bash", script]`` or the
  submit file's executable), ``cwd``, the complete ``env``
  (build it with :func:`job_environment`, then add the scheduler's variables,
  e.g. an array index), ``stdout``/``stderr``/``stdin`` paths (``None``:
  ``/dev/null``), ``name`` and free ``attrs`` (queue, owner, tag, resources:
  whatever the personality wants to print back later), and ``walltime``
  (seconds) with ``limit_signals`` when the scheduler enforces a run-time
  limit. One submit call is one
  submission number (``FakeJob.number``: a cluster, an array job id);
  ``make_id(number, position)`` turns it into each task's native id
  (``"12.3"``, ``"12[4]"``...).
* :meth:`~FakeScheduler.jobs` / :meth:`~FakeScheduler.queue` /
  :meth:`~FakeScheduler.history` -> records known to the fake: all, the
  unfinished ones (``queued``, ``held``, ``running``), the finished ones.
  A finished record has ``exit_code`` (normal exit), or ``signal`` (killed),
  or neither with ``error`` set (it could not start, e.g. a missing ``cwd``;
  with ``start_failure_holds`` such a job is held instead, the error as its
  ``hold_reason``);
  ``cancelled`` tells it was removed by :meth:`cancel`, ``timed_out`` that
  the daemon stopped it at its ``walltime`` (``limit_signals`` in turn,
  ``kill_grace`` seconds apart, then SIGKILL, like a real scheduler's limit
  enforcement).
* :meth:`~FakeScheduler.cancel` ``(ids)`` (queued/held ones end at once;
  running ones get SIGTERM on their process group, SIGKILL after
  ``kill_grace``), :meth:`~FakeScheduler.hold` ``(ids, reason)``,
  :meth:`~FakeScheduler.release` ``(ids)``: each returns the records it changed.

Misbehaviour switches (``config.json``, see :class:`Config`; tests flip them
through the fixture's handle): ``fail_rate`` (with ``seed``, ``fail_after``,
``fail_commands``, ``max_consecutive_failures``), ``forget_finished``, ``hold``
(with ``hold_reason``), ``lose``; and ``queue_delay``, ``max_running``.

Using it in tests
-----------------
``fakesched.fixture.fake_scheduler_fixture("htcondor", queue_delay=0.1)``
assigned to a module-level name gives a fixture that starts the daemon in a
temporary state directory, puts the shims first on ``PATH`` and yields a
:class:`~fakesched.fixture.FakeHandle` (all the verbs above, plus
``configure(**switches)``, ``calls()``, ``failures()``, ``lose(id)``,
``run(command, *args)``);
the daemon and every job process are gone when the test ends. :func:`invoke`
runs a personality's command in-process, for unit tests of a personality.
``fakesched/minimal.py`` is the smallest complete personality.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import getpass
import importlib
import io
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "ACTIVE_STATES",
    "Config",
    "FakeJob",
    "FakeScheduler",
    "Handler",
    "Task",
    "invoke",
    "job_environment",
    "load_personality",
    "main",
]

QUEUED, HELD, RUNNING, FINISHED = "queued", "held", "running", "finished"
ACTIVE_STATES = frozenset({QUEUED, HELD, RUNNING})
STATE_ENV = "FAKESCHED_STATE"
_MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class Config:
    """The fake's settings and misbehaviour switches (``config.json``)."""

    #: Seconds a job waits in the queue before it may start.
    queue_delay: float = 0.2
    #: Jobs running at once.
    max_running: int = 4
    #: Probability that a command fails with the scheduler's transient error.
    fail_rate: float = 0.0
    #: Seed of the failure draws (each command has its own reproducible sequence).
    seed: int = 0
    #: A failing call first does its work (the reply is lost), instead of doing nothing.
    fail_after: bool = False
    #: Only these commands fail (empty: all).
    fail_commands: list[str] = field(default_factory=list)
    #: A command never fails more often than this in a row (retries always get through).
    max_consecutive_failures: int = 2
    #: Finished jobs vanish from queue and history as soon as they end.
    forget_finished: bool = False
    #: New jobs enter the held state with ``hold_reason``.
    hold: bool = False
    hold_reason: str = "held by the fake scheduler (hold switch)"
    #: This many running jobs are lost (killed and dropped without record), one per job.
    lose: int = 0
    #: These running jobs are lost at the daemon's next tick.
    lose_ids: list[str] = field(default_factory=list)
    #: A job that cannot start (missing cwd or program) is held with the error as reason,
    #: instead of ending with ``error`` set.
    start_failure_holds: bool = False
    #: Seconds between SIGTERM and SIGKILL when a running job is cancelled (and between
    #: the signals of a run-time limit).
    kill_grace: float = 2.0
    #: The first submission number.
    first_number: int = 1
    #: Seconds between two daemon ticks.
    tick: float = 0.02


@dataclass
class Task:
    """What a personality asks the fake to run (one queued job)."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    name: str = ""
    stdout: str | None = None
    stderr: str | None = None
    stdin: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: Run-time limit in seconds, enforced by the daemon (``None``: none).
    walltime: float | None = None
    #: Signals sent in turn, ``kill_grace`` apart, once the limit is reached; SIGKILL follows.
    limit_signals: list[int] = field(default_factory=lambda: [int(signal.SIGTERM)])


@dataclass
class FakeJob(Task):
    """A job the fake knows (see the module docstring for the meaning of the fields)."""

    id: str = ""
    number: int = 0
    position: int = 0
    user: str = ""
    state: str = QUEUED
    hold_reason: str | None = None
    submit_time: float = 0.0
    queued_since: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    cancelled: bool = False
    cancel_time: float | None = None
    timed_out: bool = False
    limit_time: float | None = None
    limit_signals_sent: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FakeJob:
        return cls(**data)


@dataclass
class _State:
    next_number: int
    jobs: dict[str, FakeJob]
    calls: dict[str, int]
    streaks: dict[str, int]
    failures: dict[str, int]
    config: Config


Handler = Callable[["FakeScheduler", list[str]], int]


def job_environment(inherit: bool, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A job's environment: the submitter's (``inherit``) or a minimal login-like one."""
    if inherit:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKESCHED_")}
    else:
        env = {"PATH": _MINIMAL_PATH, "USER": getpass.getuser(), "LOGNAME": getpass.getuser()}
        env["HOME"] = os.environ.get("HOME", "/")
        env.update({k: os.environ[k] for k in ("LANG", "TZ") if k in os.environ})
    env.update(extra or {})
    return env


class FakeScheduler:
    """The fake's state directory and the verbs personalities (and tests) use."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)

    # -- storage -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_State]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._load()
            before = self._dump(state)
            yield state
            after = self._dump(state)
            for name, old, new in zip(("state.json", "config.json"), before, after, strict=True):
                if old != new:
                    tmp = self.state_dir / f".{name}.tmp"
                    tmp.write_text(new, encoding="utf-8")
                    os.replace(tmp, self.state_dir / name)

    def _load(self) -> _State:
        try:
            raw = json.loads((self.state_dir / "config.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raw = {}
        config = Config(**raw)
        try:
            data = json.loads((self.state_dir / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {"next_number": config.first_number, "jobs": {}}
        jobs = {jid: FakeJob.from_dict(rec) for jid, rec in data["jobs"].items()}
        counters = [data.get(name, {}) for name in ("calls", "streaks", "failures")]
        return _State(data["next_number"], jobs, *counters, config)

    @staticmethod
    def _dump(state: _State) -> tuple[str, str]:
        data = {
            "next_number": state.next_number,
            "jobs": {jid: job.to_dict() for jid, job in state.jobs.items()},
            "calls": state.calls,
            "streaks": state.streaks,
            "failures": state.failures,
        }
        return json.dumps(data, indent=1), json.dumps(dataclasses.asdict(state.config), indent=1)

    # -- configuration ---------------------------------------------------------------------------

    def config(self) -> Config:
        with self._transaction() as state:
            return state.config

    def configure(self, **changes: Any) -> Config:
        """Change settings / flip misbehaviour switches (unknown names are an error)."""
        with self._transaction() as state:
            state.config = dataclasses.replace(state.config, **changes)
            if "first_number" in changes and not state.jobs:
                state.next_number = int(changes["first_number"])
            return state.config

    def calls(self) -> dict[str, int]:
        """How often each command was called through the shims."""
        with self._transaction() as state:
            return dict(state.calls)

    def failures(self) -> dict[str, int]:
        """How often each command failed on purpose (``fail_rate``)."""
        with self._transaction() as state:
            return dict(state.failures)

    # -- verbs -----------------------------------------------------------------------------------

    def submit(
        self,
        tasks: Sequence[Task] | Callable[[int], Sequence[Task]],
        make_id: Callable[[int, int], str],
    ) -> list[FakeJob]:
        """Queue ``tasks`` as one submission; held at once when the ``hold`` switch is on.

        ``tasks`` may be a function of the submission number, for schedulers whose
        job descriptions refer to it (HTCondor's ``$(Cluster)``); what it raises
        propagates and nothing is queued.
        """
        now = time.time()
        with self._transaction() as state:
            number = state.next_number
            todo = tasks(number) if callable(tasks) else tasks
            state.next_number += 1
            held = state.config.hold
            created = []
            for position, task in enumerate(todo):
                job = FakeJob(
                    **dataclasses.asdict(task),
                    id=make_id(number, position),
                    number=number,
                    position=position,
                    user=getpass.getuser(),
                    state=HELD if held else QUEUED,
                    hold_reason=state.config.hold_reason if held else None,
                    submit_time=now,
                    queued_since=now,
                )
                state.jobs[job.id] = job
                created.append(job)
            return created

    def jobs(self, ids: Sequence[str] | None = None) -> list[FakeJob]:
        """Known records (of ``ids``, if given), in submission order."""
        with self._transaction() as state:
            if ids is None:
                return list(state.jobs.values())
            wanted = set(ids)
            return [job for jid, job in state.jobs.items() if jid in wanted]

    def queue(self, ids: Sequence[str] | None = None) -> list[FakeJob]:
        return [job for job in self.jobs(ids) if job.active]

    def history(self, ids: Sequence[str] | None = None) -> list[FakeJob]:
        return [job for job in self.jobs(ids) if not job.active]

    def cancel(self, ids: Sequence[str]) -> list[FakeJob]:
        """End these jobs; running ones get SIGTERM on their process group."""
        now = time.time()
        changed = []
        with self._transaction() as state:
            for jid in ids:
                job = state.jobs.get(jid)
                if job is None or not job.active or job.cancelled:
                    continue
                job.cancelled, job.cancel_time = True, now
                if job.state == RUNNING and job.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(job.pid, signal.SIGTERM)
                else:
                    job.state, job.end_time = FINISHED, now
                changed.append(job)
            if state.config.forget_finished:
                _forget_finished(state)
        return changed

    def hold(self, ids: Sequence[str], reason: str) -> list[FakeJob]:
        """Hold queued jobs (running ones are not touched)."""
        return self._set_held(ids, reason)

    def release(self, ids: Sequence[str]) -> list[FakeJob]:
        return self._set_held(ids, None)

    def _set_held(self, ids: Sequence[str], reason: str | None) -> list[FakeJob]:
        changed = []
        with self._transaction() as state:
            for jid in ids:
                job = state.jobs.get(jid)
                if job is None or job.state != (QUEUED if reason else HELD):
                    continue
                job.state, job.hold_reason = (HELD, reason) if reason else (QUEUED, None)
                job.queued_since = time.time()
                changed.append(job)
        return changed

    def lose(self, job_id: str) -> None:
        """Lose this job at the daemon's next tick if it is running."""
        with self._transaction() as state:
            state.config.lose_ids = [*state.config.lose_ids, job_id]

    def roll_failure(self, command: str) -> bool:
        """Whether this call of ``command`` fails (``fail_rate``); counts the call."""
        with self._transaction() as state:
            number = state.calls.get(command, 0)
            state.calls[command] = number + 1
            cfg = state.config
            if cfg.fail_rate <= 0 or (cfg.fail_commands and command not in cfg.fail_commands):
                return False
            fails = random.Random(f"{cfg.seed}:{command}:{number}").random() < cfg.fail_rate
            streak = state.streaks.get(command, 0)
            fails = fails and streak < cfg.max_consecutive_failures
            state.streaks[command] = streak + 1 if fails else 0
            state.failures[command] = state.failures.get(command, 0) + int(fails)
            return fails


def _forget_finished(state: _State) -> None:
    for jid in [jid for jid, job in state.jobs.items() if not job.active]:
        del state.jobs[jid]


# -- commands --------------------------------------------------------------------------------------


def load_personality(name: str) -> ModuleType:
    """The personality module ``fakesched.<name>``."""
    module = importlib.import_module(f"fakesched.{name}")
    if not hasattr(module, "COMMANDS") or not hasattr(module, "transient_error"):
        raise TypeError(f"fakesched.{name} lacks COMMANDS or transient_error()")
    return module


def _dispatch(fake: FakeScheduler, personality: ModuleType, command: str, args: list[str]) -> int:
    handler: Handler = personality.COMMANDS[command]
    if not fake.roll_failure(command):
        return handler(fake, args)
    message, code = personality.transient_error(command)
    if fake.config().fail_after:  # the work is done, but the caller never hears of it
        real_out = sys.stdout
        sys.stdout = io.StringIO()
        try:
            handler(fake, args)
        finally:
            sys.stdout = real_out
    print(message, file=sys.stderr)
    return code


def invoke(
    fake: FakeScheduler, personality: str, command: str, args: Sequence[str], stdin: str = ""
) -> tuple[int, str, str]:
    """Run a personality's command in this process: ``(exit status, stdout, stderr)``."""
    module = load_personality(personality)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), io.StringIO(), io.StringIO()
    try:
        code = _dispatch(fake, module, command, list(args))
        return code, sys.stdout.getvalue(), sys.stderr.getvalue()  # type: ignore[attr-defined]
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def main(argv: Sequence[str]) -> int:
    """``daemon STATE_DIR`` or ``PERSONALITY COMMAND ARGS...`` (state dir in $FAKESCHED_STATE)."""
    if len(argv) == 2 and argv[0] == "daemon":
        from fakesched.daemon import run_daemon

        return run_daemon(argv[1])
    if len(argv) < 2:
        print(
            "usage: python -m fakesched (daemon DIR | PERSONALITY COMMAND ARGS...)", file=sys.stderr
        )
        return 2
    module = load_personality(argv[0])
    return _dispatch(FakeScheduler(os.environ[STATE_ENV]), module, argv[1], list(argv[2:]))

"""The fake scheduler's daemon: starts queued jobs, reaps them, applies the switches.

Started by the fixture as ``python -m fakesched daemon STATE_DIR``; see
:mod:`fakesched.core` for the state it works on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

from fakesched.core import (
    FINISHED,
    HELD,
    QUEUED,
    RUNNING,
    FakeJob,
    FakeScheduler,
    _forget_finished,
    _State,
)

__all__ = ["run_daemon"]


def _start(job: FakeJob, hold_on_failure: bool) -> subprocess.Popen[bytes] | None:
    def sink(path: str | None, mode: str) -> Any:
        return open(path or os.devnull, mode)

    try:
        with (
            sink(job.stdin, "rb") as stdin,
            sink(job.stdout, "wb") as out,
            out if job.stderr and job.stderr == job.stdout else sink(job.stderr, "wb") as err,
        ):
            proc = subprocess.Popen(
                job.argv, cwd=job.cwd, env=job.env, stdin=stdin, stdout=out, stderr=err,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
    except OSError as exc:
        error = f"{exc.strerror or exc}: {exc.filename or job.argv[0]}"
        if hold_on_failure:
            job.state, job.hold_reason = HELD, error
        else:
            job.state, job.end_time, job.error = FINISHED, time.time(), error
        return None
    job.state, job.pid, job.start_time = RUNNING, proc.pid, time.time()
    return proc


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _enforce_walltime(
    job: FakeJob, proc: subprocess.Popen[bytes], now: float, grace: float
) -> None:
    """Past its walltime, a job gets its limit signals ``grace`` seconds apart, then SIGKILL."""
    if job.walltime is None or job.start_time is None or now - job.start_time < job.walltime:
        return
    if not job.timed_out:
        job.timed_out, job.limit_time = True, now
    signals = [*job.limit_signals, int(signal.SIGKILL)]
    due = min(len(signals), int((now - (job.limit_time or now)) // grace) + 1)
    while job.limit_signals_sent < due:
        _kill(proc.pid, signals[job.limit_signals_sent])
        job.limit_signals_sent += 1


def _tick(state: _State, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    cfg, now = state.config, time.time()
    for jid, proc in list(procs.items()):
        job = state.jobs.get(jid)
        if job is None or job.state != RUNNING:  # lost (or forgotten): only reap it
            if proc.poll() is not None:
                del procs[jid]
            continue
        if jid in cfg.lose_ids or (cfg.lose > 0 and not job.cancelled):
            _kill(proc.pid, signal.SIGKILL)
            del state.jobs[jid]
            if jid in cfg.lose_ids:
                cfg.lose_ids = [i for i in cfg.lose_ids if i != jid]
            else:
                cfg.lose -= 1
            continue
        code = proc.poll()
        if code is None:
            if job.cancelled and job.cancel_time and now - job.cancel_time > cfg.kill_grace:
                _kill(proc.pid, signal.SIGKILL)
            elif not job.cancelled:
                _enforce_walltime(job, proc, now, cfg.kill_grace)
            continue
        del procs[jid]
        job.state, job.end_time = FINISHED, now
        job.exit_code, job.signal = (code, None) if code >= 0 else (None, -code)
    cfg.lose_ids = [i for i in cfg.lose_ids if i in state.jobs]
    if cfg.forget_finished:
        _forget_finished(state)
    running = sum(1 for job in state.jobs.values() if job.state == RUNNING)
    for job in list(state.jobs.values()):
        if running >= cfg.max_running:
            break
        if job.state == QUEUED and now - job.queued_since >= cfg.queue_delay:
            proc = _start(job, cfg.start_failure_holds)
            if proc is not None:
                procs[job.id] = proc
                running += 1


def run_daemon(state_dir: str | os.PathLike[str]) -> int:
    """Run queued jobs until SIGTERM/SIGINT; then kill what still runs and exit."""
    fake = FakeScheduler(state_dir)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _frame: stop.append(sig))
    signal.signal(signal.SIGINT, lambda sig, _frame: stop.append(sig))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    (fake.state_dir / "daemon.pid").write_text(f"{os.getpid()}\n")
    tick, parent = 0.02, os.getppid()
    while not stop and os.getppid() == parent:  # never outlive the test run that started it
        with fake._transaction() as state:
            _tick(state, procs)
            tick = state.config.tick
        time.sleep(tick)
    for proc in procs.values():
        _kill(proc.pid, signal.SIGKILL)
    for proc in procs.values():
        proc.wait()
    return 0

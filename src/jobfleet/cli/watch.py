"""``jobfleet watch``: follow jobs to their end (and be the runner when holding the lease)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from jobfleet.cli.common import err_console, state_of
from jobfleet.errors import JobfleetError
from jobfleet.fleet import Fleet, get_driver
from jobfleet.fleet.control import cancel
from jobfleet.fleet.driver import is_registered, needs_runner
from jobfleet.fleet.progress import JobProgress

__all__ = ["COMMANDS", "BackgroundSubmission", "counts_text", "watch", "watch_jobs"]

log = logging.getLogger("jobfleet.cli.watch")

_STYLES = {
    "init": "dim",
    "submitted": "cyan",
    "running": "blue",
    "failed": "red",
    "completed": "green",
}
_FALLBACK_INTERVAL = 5.0


def counts_text(counts: dict[str, int], *, markup: bool = True) -> str:
    """``"3 running, 1 failed, 6 completed"``, coloured with Rich markup unless ``markup=False``."""
    parts = []
    for status, n in counts.items():
        part = f"{n} {status}"
        parts.append(f"[{_STYLES[status]}]{part}[/]" if markup and status in _STYLES else part)
    return ", ".join(parts) or "no subjobs"


def _interval(fleet: Fleet, job_ids: Sequence[int]) -> float:
    """The shortest poll interval among the jobs: a job's own ``poll_interval`` option,
    else its backend's default."""
    intervals = [_FALLBACK_INTERVAL]
    for record in {fleet.job_record(i).id: fleet.job_record(i) for i in job_ids}.values():
        own = record.backend_options.get("poll_interval")
        if isinstance(own, int | float) and not isinstance(own, bool):
            intervals.append(float(own))
        elif is_registered(record.backend):
            intervals.append(get_driver(record.backend, {}).poll_interval)
    return max(min(intervals), 0.05)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM ends the watch through ``finally`` (releasing leases), not abruptly."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(143)

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _note(job: JobProgress) -> str:
    notes = []
    if job.retry_due or job.retry_pending:
        notes.append(f"{job.retry_due + job.retry_pending} to retry")
    if job.retries_stopped:
        notes.append("retries stopped")
    if job.unsubmitted and not job.submitting:
        notes.append(f"{job.unsubmitted} never submitted")
    return f" ({'; '.join(notes)})" if notes else ""


#: Reason stored for the units ``submit --watch`` stops on Ctrl-C.
INTERRUPTED = "interrupted (Ctrl-C)"


class _Stopped(Exception):
    """Raised inside a background submission to end it between two recorded batches."""


class BackgroundSubmission:
    """Hands a stored job's units over in a thread while this process watches the job.

    ``submit --watch`` uses it so that the first subjobs run (and, on the local
    backend, this process launches them) while later ones are still being
    prepared. ``hand_over(fleet, progress)`` does the submitting through a
    :class:`Fleet` of its own (own leases and caches; the store is shared and
    thread-safe). :meth:`stop` ends it between two recorded batches: what was
    not recorded stays in init, for ``submit --resume``.
    """

    def __init__(
        self,
        fleet: Fleet,
        hand_over: Callable[[Fleet, Callable[[int], None]], int],
        *,
        resume_hint: str = "",
    ) -> None:
        self._fleet = Fleet(fleet.store, lease_ttl=fleet.lease_ttl)
        self._watcher = fleet
        self._hand_over = hand_over
        #: Told the user when a Ctrl-C stops the submission and the units stay queued.
        self.resume_hint = resume_hint
        self._stop = threading.Event()
        #: Set once the first units are recorded (the watcher need not wait a whole pause).
        self.first_recorded = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jobfleet-submit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._hand_over(self._fleet, self._check_stop)
        except _Stopped:
            log.info("submission stopped; the rest of the units stay in init")
        except BaseException as err:  # handed to the watching thread by check()
            self._error = err

    def _check_stop(self, recorded: int) -> None:
        self.first_recorded.set()
        # A local runner with nothing left to start polls at once instead of idling.
        self._watcher.wake()
        if self._stop.is_set():
            raise _Stopped

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise, in the caller's thread, what ended the submission (once it has ended)."""
        if not self._thread.is_alive() and self._error is not None:
            error, self._error = self._error, None
            raise error

    def stop(self) -> None:
        """End the submission after its current batch and wait for it (idempotent)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()


def _stop_interrupted(fleet: Fleet, job_ids: Sequence[int]) -> dict[str, int]:
    """Stop the unfinished units of runner-driven jobs (local); job name -> how many."""
    # Launch nothing more, then poll once, so units that have already ended are stored as
    # they ended, not as interrupted.
    fleet.stop_launching()
    with contextlib.suppress(JobfleetError, OSError):
        fleet.watch_step(job_ids)
    stopped = {}
    for job_id in job_ids:
        record = fleet.job_record(job_id)
        if needs_runner(record.backend):
            stopped[record.name] = cancel(fleet, job_id, reason=INTERRUPTED)
    # A unit that ended between that poll and its cancel was left to the next poll by the
    # cancel; this process is the one polling, and it is about to stop.
    with contextlib.suppress(JobfleetError, OSError):
        fleet.watch_step(job_ids)
    return stopped


def watch_jobs(
    fleet: Fleet,
    job_ids: Sequence[int],
    *,
    interval: float | None,
    quiet: bool,
    stop_on_interrupt: bool = False,
    submission: BackgroundSubmission | None = None,
) -> int:
    """Watch steps until every job has ended; 0 if everything completed, else 1.

    ``stop_on_interrupt`` (``submit --watch``): Ctrl-C also stops the jobs that
    run on this machine (local), recording them as interrupted, instead of
    leaving them to a background runner. ``submission``: the jobs are still
    being submitted by it; watching ends only after it has, and its error is
    raised here.
    """
    pause = interval if interval is not None else _interval(fleet, job_ids)
    console = err_console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        disable=quiet,
    )
    tasks: dict[int, TaskID] = {}
    state: dict[int, JobProgress] = {}
    try:
        with _terminate_as_exit(), progress:
            while True:
                # Read before the step: a submission that ends during the step may have
                # recorded units that this step's view does not show yet.
                submitting = submission is not None and submission.running
                first = submission.first_recorded if submission is not None else None
                # Also before the step: units recorded during it are launched by the next one,
                # which must then come at once, not after a whole pause with nothing running.
                step_saw_first = first is None or first.is_set()
                if submission is not None:
                    submission.check()
                state = fleet.watch_step(job_ids)
                for job_id, job in state.items():
                    if job_id not in tasks:
                        tasks[job_id] = progress.add_task(job.name, total=job.total, counts="")
                    ended = job.counts.get("completed", 0) + job.counts.get("failed", 0)
                    text = counts_text(job.counts) + _note(job)
                    progress.update(tasks[job_id], completed=ended, counts=text)
                if not submitting and all(job.ended for job in state.values()):
                    break
                if submitting and first is not None and not step_saw_first:
                    first.wait(pause)  # returns at once if they were recorded during the step
                else:
                    fleet.pause(pause)  # returns early when a local unit ends
    except KeyboardInterrupt:
        if submission is not None:
            submission.stop()  # before cancelling: it must not hand over anything more
        stopped = _stop_interrupted(fleet, job_ids) if stop_on_interrupt else {}
        for name, count in stopped.items():
            console.print(
                f"{name}: stopped {count} unfinished subjob(s); "
                f"run them again with: jobfleet resubmit {name} --failed"
            )
        if not quiet and not stopped:
            console.print("stopped watching; the jobs go on (jobfleet watch picks them up again)")
            if submission is not None and submission.resume_hint:
                console.print(f"the submission was stopped too; {submission.resume_hint}")
        raise
    finally:
        if submission is not None:
            submission.stop()
        started = fleet.stop_watching()
        if started:
            log.info("handed polling over to a background runner (pid %s)", started)
    if not quiet:
        for job in state.values():
            verdict = "completed" if job.completed else "did not complete"
            console.print(f"{job.name}: {verdict}: {counts_text(job.counts)}{_note(job)}")
    return 0 if all(job.completed for job in state.values()) else 1


@click.command()
@click.argument("jobs", metavar="[JOB]...", nargs=-1)
@click.option("--interval", type=click.FloatRange(min=0.05), help="Seconds between polls.")
@click.option("--quiet", is_flag=True, help="No progress display (used by background runners).")
@click.pass_context
def watch(ctx: click.Context, jobs: tuple[str, ...], interval: float | None, quiet: bool) -> int:
    """Follow jobs (default: all unfinished ones) until they end.

    Exits 0 only if every subjob completed. While it runs it also polls the
    schedulers (one process at a time does, for everybody).
    """
    fleet = state_of(ctx).fleet
    if jobs:
        ids = list(dict.fromkeys(fleet.job_record(ref).id for ref in jobs))
    else:
        ids = [
            r.id
            for r in fleet.store.list_jobs()
            if any(s in ("init", "submitted", "running") for s in fleet.store.counts(r.id))
        ]
        if not ids:
            if not quiet:
                err_console().print("nothing to watch: no job has unfinished subjobs")
            return 0
    return watch_jobs(fleet, ids, interval=interval, quiet=quiet)


COMMANDS = [watch]

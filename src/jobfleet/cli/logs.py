"""``jobfleet logs``: a unit's stdout or stderr, optionally followed while it runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from jobfleet.cli.common import state_of
from jobfleet.fleet.driver import unit_of
from jobfleet.job import Job
from jobfleet.store import FINAL_STATUSES, WHOLE_JOB, JobRecord, Store
from jobfleet.workdir import STDERR_FILE, STDOUT_FILE

__all__ = ["COMMANDS", "logs"]

_FOLLOW_PAUSE = 0.2


def _copy_from(path: Path, offset: int) -> int:
    """Write ``path`` from byte ``offset`` to stdout; the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return offset + len(data)


def _follow(store: Store, record: JobRecord, subjob_id: int, path: Path) -> None:
    """Print ``path`` as it grows until the unit has ended and nothing more arrives."""
    offset = 0
    while True:
        offset = _copy_from(path, offset)
        [sub] = store.subjobs(record.id, ids=[subjob_id])
        if sub.status in FINAL_STATUSES:
            _copy_from(path, offset)  # what was written just before it ended
            return
        time.sleep(_FOLLOW_PAUSE)


@click.command()
@click.argument("job")
@click.argument("subjob", type=int, required=False)
@click.option("--stderr", "show_stderr", is_flag=True, help="Show stderr instead of stdout.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the subjob ends.")
@click.pass_context
def logs(ctx: click.Context, job: str, subjob: int | None, show_stderr: bool, follow: bool) -> int:
    """Print the output of SUBJOB of JOB (of every subjob if none is named)."""
    store = state_of(ctx).store
    record = store.get_job(job)
    described = Job(record.name, job_dict=record.description)
    name = STDERR_FILE if show_stderr else STDOUT_FILE
    subjobs = store.subjobs(record.id)
    ids = [s.subjob_id for s in subjobs]
    if subjob is None:
        if follow and len(ids) > 1:
            raise click.UsageError("--follow needs a SUBJOB (the job has several)", ctx)
        wanted = ids
    elif subjob not in ids:
        whole = ids == [WHOLE_JOB]
        raise click.ClickException(
            f"job {record.name!r} has no subjobs"
            if whole
            else f"job {record.name!r} has no subjob {subjob} (its ids: {ids[0]}-{ids[-1]})"
        )
    else:
        wanted = [subjob]
    for sid in wanted:
        path = unit_of(described, sid).working_dir / name
        if follow:
            _follow(store, record, sid, path)
            continue
        if len(wanted) > 1:
            click.echo(f"==> subjob {sid} <==")
        if not path.exists():
            status = next(s.status for s in subjobs if s.subjob_id == sid)
            click.echo(f"(no {name} yet: subjob is {status})", err=True)
            continue
        _copy_from(path, 0)
    return 0


COMMANDS = [logs]

"""``jobfleet cancel``, ``resubmit`` and ``rm``."""

from __future__ import annotations

import click

from jobfleet.cli.common import SubjobIds, check_subjob_ids, err_console, state_of
from jobfleet.fleet import control

__all__ = ["COMMANDS", "cancel", "resubmit", "rm"]


@click.command()
@click.argument("job")
@click.option("--subjobs", "ids", type=SubjobIds(), help="Only these subjobs, e.g. 3,5-7.")
@click.pass_context
def cancel(ctx: click.Context, job: str, ids: list[int] | None) -> int:
    """Cancel JOB's queued and running subjobs; they end failed ("cancelled")."""
    fleet = state_of(ctx).fleet
    record = fleet.job_record(job)
    if ids is not None:
        check_subjob_ids(record.name, fleet.store.subjobs(record.id), ids)
    count = control.cancel(fleet, record.id, ids)
    err_console().print(
        f"cancelled {count} subjob(s) of {record.name}" if count else "nothing to cancel"
    )
    return 0


@click.command()
@click.argument("job")
@click.option("--failed", "failed_only", is_flag=True, help="All failed subjobs (the default).")
@click.option("--subjobs", "ids", type=SubjobIds(), help="These subjobs, e.g. 3,5-7.")
@click.pass_context
def resubmit(ctx: click.Context, job: str, failed_only: bool, ids: list[int] | None) -> int:
    """Submit ended subjobs of JOB again: the failed ones, or those named."""
    if failed_only and ids is not None:
        raise click.UsageError("use either --failed or --subjobs, not both", ctx)
    fleet = state_of(ctx).fleet
    record = fleet.job_record(job)
    if ids is not None:
        check_subjob_ids(record.name, fleet.store.subjobs(record.id), ids)
    count = control.resubmit(fleet, record.id, failed_only=failed_only, subjob_ids=ids)
    console = err_console()
    if not count:
        console.print("nothing to resubmit")
        return 0
    console.print(f"resubmitted {count} subjob(s) of {record.name}")
    fleet.ensure_runner(record)
    return 0


@click.command()
@click.argument("job")
@click.option("--force", is_flag=True, help="Cancel what still runs, then remove.")
@click.pass_context
def rm(ctx: click.Context, job: str, force: bool) -> int:
    """Remove JOB from the store (its working directory is kept)."""
    fleet = state_of(ctx).fleet
    record = fleet.job_record(job)
    control.remove(fleet, record.id, force=force)
    err_console().print(f"removed job {record.name} (id {record.id}) from the store")
    return 0


COMMANDS = [cancel, resubmit, rm]

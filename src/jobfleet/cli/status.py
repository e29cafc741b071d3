"""``jobfleet status`` and ``jobfleet list``: what the store says about jobs."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobfleet.cli.common import out_console, state_of
from jobfleet.cli.watch import counts_text
from jobfleet.fleet.policy import policy_of
from jobfleet.fleet.progress import job_status, plan_retries
from jobfleet.store import STATUS_ORDER, JobRecord, Store, SubjobRecord

__all__ = ["COMMANDS", "job_json", "list_jobs", "status"]

#: Failed subjobs listed one by one; beyond that only the count by reason.
_FAILURES_SHOWN = 20


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _ordered_counts(subjobs: list[SubjobRecord]) -> dict[str, int]:
    counts = {s: 0 for s in STATUS_ORDER}
    for sub in subjobs:
        counts[sub.status] = counts.get(sub.status, 0) + 1
    return {s: n for s, n in counts.items() if n}


def job_json(store: Store, record: JobRecord) -> dict[str, Any]:
    """One job as a JSON-ready dict (what ``status JOB --json`` prints)."""
    subjobs = store.subjobs(record.id)
    counts = _ordered_counts(subjobs)
    plan = plan_retries(subjobs, policy_of(record))
    return {
        "id": record.id,
        "name": record.name,
        "backend": record.backend,
        "status": job_status(counts),
        "counts": counts,
        "total": len(subjobs),
        "created_at": record.created_at,
        "working_dir": record.description.get("working_dir"),
        "max_retries": record.max_retries,
        "retries_stopped": plan.stopped,
        "subjobs": [
            {
                "id": s.subjob_id,
                "status": s.status,
                "exit_code": s.exit_code,
                "attempts": s.attempt,
                "reason": s.reason,
                "native_id": s.native_id,
                "submitted_at": s.submitted_at,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
            }
            for s in subjobs
        ],
    }


def _jobs_table(store: Store, records: list[JobRecord], *, with_counts: bool) -> Table:
    table = Table("id", "name", "backend", "status", "subjobs", "created")
    if with_counts:
        table.add_column("counts")
    for record in records:
        counts = store.counts(record.id)
        row: list[Any] = [
            str(record.id),
            Text(record.name),
            record.backend,
            job_status(counts),
            str(sum(counts.values())),
            _when(record.created_at),
        ]
        if with_counts:
            row.append(counts_text({s: counts[s] for s in STATUS_ORDER if s in counts}))
        table.add_row(*row)
    return table


def _show_job(console: Console, store: Store, record: JobRecord) -> None:
    doc = job_json(store, record)
    console.print(
        Text.assemble(
            (record.name, "bold"),
            f" (id {record.id}, backend {record.backend}): ",
            (doc["status"], "bold"),
        )
    )
    console.print(f"  {doc['total']} subjob(s): {counts_text(doc['counts'])}")
    console.print(Text(f"  working dir: {doc['working_dir']}"))
    console.print(f"  submitted: {_when(record.created_at)}; max retries: {record.max_retries}")
    if doc["retries_stopped"]:
        console.print("  [red]retries stopped: too many subjobs failed[/]")
    failed = [s for s in doc["subjobs"] if s["status"] == "failed"]
    if not failed:
        return
    table = Table("subjob", "attempts", "exit code", "reason", title="failed subjobs")
    for sub in failed[:_FAILURES_SHOWN]:
        exit_code = "-" if sub["exit_code"] is None else str(sub["exit_code"])
        table.add_row(str(sub["id"]), str(sub["attempts"]), exit_code, Text(sub["reason"] or "-"))
    console.print(table)
    if len(failed) > _FAILURES_SHOWN:
        by_reason: dict[str, int] = {}
        for sub in failed:
            by_reason[sub["reason"] or "-"] = by_reason.get(sub["reason"] or "-", 0) + 1
        console.print(f"... {len(failed) - _FAILURES_SHOWN} more failed; all failures by reason:")
        for reason, n in sorted(by_reason.items(), key=lambda item: -item[1]):
            console.print(Text(f"  {n:6d}  {reason}"))


@click.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@click.pass_context
def status(ctx: click.Context, job: str | None, as_json: bool) -> int:
    """Show all jobs, or one JOB (name or id) with its failures."""
    store = state_of(ctx).store
    if job is not None:
        record = store.get_job(job)
        if as_json:
            click.echo(json.dumps(job_json(store, record), indent=2))
        else:
            _show_job(out_console(), store, record)
        return 0
    records = store.list_jobs()
    if as_json:
        jobs = []
        for record in records:
            counts = store.counts(record.id)
            jobs.append(
                {
                    "id": record.id,
                    "name": record.name,
                    "backend": record.backend,
                    "status": job_status(counts),
                    "counts": counts,
                    "total": sum(counts.values()),
                }
            )
        click.echo(json.dumps({"jobs": jobs}, indent=2))
    elif not records:
        out_console().print("no jobs in the store")
    else:
        out_console().print(_jobs_table(store, records, with_counts=True))
    return 0


@click.command("list")
@click.pass_context
def list_jobs(ctx: click.Context) -> int:
    """List the jobs in the store."""
    store = state_of(ctx).store
    records = store.list_jobs()
    console = out_console()
    if not records:
        console.print("no jobs in the store")
    else:
        console.print(_jobs_table(store, records, with_counts=False))
    return 0


COMMANDS = [status, list_jobs]

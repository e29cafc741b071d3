"""``jobfleet report``: write a self-contained HTML page about a job."""

from __future__ import annotations

import time
from pathlib import Path

import click

from jobfleet.cli.common import err_console, state_of
from jobfleet.cli.htmlreport import render_report

__all__ = ["COMMANDS", "report"]


@click.command()
@click.argument("job")
@click.option(
    "--html",
    "html_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file.",
)
@click.pass_context
def report(ctx: click.Context, job: str, html_path: Path) -> int:
    """Write an HTML report of JOB: counts, timeline, failures, slowest subjobs."""
    store = state_of(ctx).store
    record = store.get_job(job)
    page = render_report(record, store.subjobs(record.id), now=time.time())
    html_path.write_text(page, encoding="utf-8")
    err_console().print(f"wrote {html_path}")
    return 0


COMMANDS = [report]

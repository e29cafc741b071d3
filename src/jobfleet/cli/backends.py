"""``jobfleet backends``: which backends can be used here."""

from __future__ import annotations

import json

import click
from rich.table import Table
from rich.text import Text

from jobfleet.cli.common import out_console
from jobfleet.fleet import driver_availability, driver_names

__all__ = ["COMMANDS", "backends"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def backends(as_json: bool) -> int:
    """List the backends, whether each is usable on this machine, and if not, why."""
    rows = [(name, *driver_availability(name)) for name in driver_names()]
    if as_json:
        doc = [{"name": n, "usable": ok, "why_not": why} for n, ok, why in rows]
        click.echo(json.dumps(doc, indent=2))
        return 0
    table = Table("backend", "usable", "why not")
    for name, ok, why in rows:
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", Text(why or ""))
    out_console().print(table)
    return 0


COMMANDS = [backends]

"""What every command shares: the store and fleet of this invocation, consoles, id lists."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from jobfleet._gc import cycle_collector_paused
from jobfleet.fleet import Fleet
from jobfleet.store import Store, SubjobRecord

__all__ = [
    "AppState",
    "SubjobIds",
    "check_subjob_ids",
    "err_console",
    "long_lived",
    "out_console",
    "own_the_process",
    "state_of",
]

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_MAX_IDS = 1_000_000


class _Process:
    #: Whether the command runs as the process itself (the ``jobfleet`` script), not
    #: called in-process by tests or another program: only then may it freeze the heap.
    owned = False


def own_the_process() -> None:
    """Called by :func:`jobfleet.cli.main` when the command is the whole process."""
    _Process.owned = True


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Build objects that live until the command ends: no cycle collections meanwhile,
    and afterwards (own process only) they are left out of all later ones.

    A submitted job's 100,000s of subjobs would otherwise be walked right after they
    are built (0.09 s at 100,000), at each full collection (0.16 s) and again and again
    while watching. Cycles among them, if any, are then never collected, which does
    not matter in a process about to end.
    """
    with cycle_collector_paused():
        yield
        if _Process.owned:
            gc.freeze()


def _width() -> int | None:
    # Rich falls back to 80 columns without a terminal; tables of ids and reasons need more.
    return None if os.isatty(1) else max(shutil.get_terminal_size((160, 24)).columns, 160)


def out_console() -> Console:
    """Console for a command's output (stdout)."""
    return Console(highlight=False, soft_wrap=False, width=_width())


def err_console() -> Console:
    """Console for progress bars and notes (stderr), so stdout stays clean for --json."""
    return Console(stderr=True, highlight=False)


@dataclass
class AppState:
    """Global options, plus the store and fleet opened on first use."""

    db: Path | None
    debug: bool
    _store: Store | None = field(default=None, repr=False)
    _fleet: Fleet | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db)
        return self._store

    @property
    def fleet(self) -> Fleet:
        if self._fleet is None:
            self._fleet = Fleet(self.store)
        return self._fleet

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._fleet = None


def state_of(ctx: click.Context) -> AppState:
    """The :class:`AppState` the top-level group put into the context."""
    state = ctx.find_object(AppState)
    if state is None:  # only when a command is invoked without the group
        state = AppState(db=None, debug=False)
        ctx.obj = state
    return state


if TYPE_CHECKING:
    _IdsParamType = click.ParamType[list[int]]
else:  # click < 8.2 has no generic ParamType at run time
    _IdsParamType = click.ParamType


class SubjobIds(_IdsParamType):
    """``3,5-7`` -> ``[3, 5, 6, 7]`` (sorted, each once)."""

    name = "ids"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        ids: set[int] = set()
        text = str(value).strip()
        if not text:
            self.fail("expected subjob ids like 3,5-7, got nothing", param, ctx)
        for part in text.split(","):
            match = _RANGE.match(part.strip())
            if match is None:
                self.fail(f"{part.strip()!r} is not a subjob id or range (expected e.g. 3,5-7)")
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            if last < first:
                self.fail(f"range {part.strip()!r} goes down; write it as {last}-{first}")
            if last - first + len(ids) > _MAX_IDS:
                self.fail(f"range {part.strip()!r} is too large")
            ids.update(range(first, last + 1))
        return sorted(ids)


def check_subjob_ids(job_name: str, records: list[SubjobRecord], wanted: list[int]) -> None:
    """Raise a one-line error naming ids that ``records`` (a job's subjobs) lack."""
    known = {r.subjob_id for r in records}
    missing = [i for i in wanted if i not in known]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise click.ClickException(f"job {job_name!r} has no subjob(s) {shown}")

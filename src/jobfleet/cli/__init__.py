"""The ``jobfleet`` command line: submit, follow and manage batch jobs kept in the job store.

User mistakes end in ONE line on stderr, ``error: ...``, with exit code 2 for
usage errors and 1 otherwise; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from jobfleet.cli.common import AppState, own_the_process
from jobfleet.errors import JobfleetError

__all__ = ["COMMAND_MODULES", "cli", "main"]

log = logging.getLogger("jobfleet.cli")

_LOG_LEVELS = ("debug", "info", "warning", "error")


#: The module (in jobfleet.cli) of each command. Only the one that runs is imported: a
#: `jobfleet status` does not pay for the spec models and templates `submit` needs.
COMMAND_MODULES = {
    "submit": "submit", "status": "status", "list": "status", "watch": "watch", "logs": "logs",
    "cancel": "control", "resubmit": "control", "rm": "control", "backends": "backends",
    "report": "report",
}  # fmt: skip


class _LazyGroup(click.Group):
    """A group whose commands are imported when used (``--help`` imports them all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        commands: list[click.Command] = importlib.import_module(f"jobfleet.cli.{module}").COMMANDS
        return next(command for command in commands if command.name == cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Job store file (default: $JOBFLEET_DB, else ~/.local/share/jobfleet/jobfleet.db).",
)
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks on errors.")
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS),
    default="warning",
    show_default=True,
    help="Which log messages to show on stderr.",
)
@click.version_option(package_name="jobfleet")
@click.pass_context
def cli(ctx: click.Context, db: Path | None, debug: bool, log_level: str) -> None:
    """Describe a batch job once, split it into subjobs, run them anywhere, follow them."""
    state = AppState(db=db, debug=debug)
    ctx.obj = state
    ctx.call_on_close(state.close)
    _configure_logging(logging.DEBUG if debug else getattr(logging, log_level.upper()))


def _configure_logging(level: int) -> None:
    root = logging.getLogger("jobfleet")
    for handler in list(root.handlers):
        if getattr(handler, "_jobfleet_cli", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._jobfleet_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    if level > logging.INFO:
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def _one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text or "failed"


def _fail(message: object, code: int) -> int:
    click.echo(f"error: {_one_line(message)}", err=True)
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``jobfleet`` command; exits with the command's code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        own_the_process()
    debug = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    try:
        code = cli.main(args=args, prog_name="jobfleet", standalone_mode=False)
    except click.UsageError as err:
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        code = _fail(f"{err.format_message()}{hint}", 2)
    except click.ClickException as err:
        code = _fail(err.format_message(), err.exit_code)
    except click.Abort as err:
        # Click turns Ctrl-C into Abort; say what happened.
        interrupted = isinstance(err.__cause__, KeyboardInterrupt)
        code = _fail("interrupted" if interrupted else "aborted", 130)
    except KeyboardInterrupt:
        code = _fail("interrupted", 130)
    except (JobfleetError, OSError) as err:
        if debug:
            raise
        code = _fail(err, 1)
    except Exception as err:
        if debug:
            raise
        code = _fail(
            f"internal error: {type(err).__name__}: {err} (run with --debug for details)", 1
        )
    if argv is None:
        # The process ends here: frozen objects are left out of the collections run at
        # interpreter exit, which walked every object (~0.3 s on a loaded machine).
        gc.freeze()
    sys.exit(code if isinstance(code, int) else 0)

"""The installed ``jobfleet`` console script: help, version, and errors without tracebacks."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import jobfleet.cli as cli_package
from jobfleet.cli import COMMAND_MODULES

from .conftest import run_jobfleet

COMMANDS = (
    "submit",
    "status",
    "watch",
    "list",
    "logs",
    "cancel",
    "resubmit",
    "rm",
    "backends",
    "report",
)


def test_help_lists_every_command(db):
    result = run_jobfleet("--help")
    assert result.code == 0
    for command in COMMANDS:
        assert command in result.out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(db, command):
    result = run_jobfleet(command, "--help")
    assert result.code == 0 and "Usage: jobfleet" in result.out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("status", "ghost"), 1, "no job 'ghost' in the job store"),
        (("submit", "/nonexistent/spec.toml"), 1, "cannot read it"),
        (("cancel", "ghost", "--subjobs", "5-3"), 2, "goes down"),
        (("submit", "x.toml", "--backend"), 2, "requires an argument"),
        (("frobnicate",), 2, "No such command 'frobnicate'"),
        (("logs",), 2, "Missing argument 'JOB'"),
    ],
)
def test_user_errors_through_the_real_entry_point(db, args, code, message):
    result = run_jobfleet(*args)
    assert result.code == code
    assert message in result.error_line
    assert result.out == ""


def test_debug_shows_the_traceback(db):
    result = run_jobfleet("--debug", "status", "ghost")
    assert result.code == 1
    assert "Traceback" in result.err and "JobNotFoundError" in result.err


def test_unusable_store_is_one_line(tmp_path):
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_text("this is not SQLite " * 100)
    result = run_jobfleet("--db", str(not_a_db), "list")
    assert result.code == 1
    assert "cannot open the job store" in result.error_line


def test_every_command_module_is_known_to_the_lazy_group():
    # A command added to a module but not to COMMAND_MODULES would silently be missing.
    found = {}
    for path in sorted(Path(cli_package.__file__).parent.glob("[!_]*.py")):
        module = importlib.import_module(f"jobfleet.cli.{path.stem}")
        found.update({c.name: path.stem for c in getattr(module, "COMMANDS", ())})
    assert found == COMMAND_MODULES
    assert sorted(found) == sorted(COMMANDS)


# What a command that only reads the store must not import (the spec models, templates).
_HEAVY = ("pydantic", "jinja2", "jobfleet.spec", "jobfleet.fleet.localrunner")
_PROBE = """
import sys
from jobfleet.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("imported:", ",".join(name for name in {heavy!r} if name in sys.modules))
"""


@pytest.mark.parametrize("command", [("list",), ("status",), ("--version",)])
def test_reading_commands_do_not_load_the_spec_models_or_templates(db, command):
    probe = _PROBE.format(heavy=_HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True
    )
    imported = done.stdout.splitlines()[-1]
    assert imported == "imported: ", f"jobfleet {' '.join(command)} {imported}"

"""Fixtures shared with the command-line tests."""

from cli.conftest import db, jf  # noqa: F401

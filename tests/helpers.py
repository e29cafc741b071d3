"""Helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(condition: Callable[[], object], timeout: float = 30.0, step: float = 0.02) -> None:
    """Wait for ``condition()`` to be true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {condition}")
        time.sleep(step)

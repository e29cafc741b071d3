"""Helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(
    condition: Callable[[], Any], timeout: float = 30.0, step: float = 0.02, *, what: str = ""
) -> Any:
    """Wait for ``condition()`` to be truthy and return its value; fail the test after
    ``timeout`` seconds (no sleep-and-hope: every wait has a condition and a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(step)

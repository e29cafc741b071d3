"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def data_files(tmp_path: Path) -> Callable[[int], list[Path]]:
    def make(n: int) -> list[Path]:
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        files = []
        for i in range(n):
            path = folder / f"f{i:03d}.txt"
            path.write_text(f"file {i}\n")
            files.append(path)
        return files

    return make

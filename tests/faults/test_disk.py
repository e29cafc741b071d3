"""The working area is full or read-only at submission: one error line naming the path,
and nothing recorded in the store.

As root (CI) chmod does not stop writes, so the working area is a small tmpfs,
filled up or mounted read-only, unmounted afterwards. Without root the read-only
case falls back to a directory with mode 0o555 and the full case is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.conftest import db, run_jobfleet  # noqa: F401
from jobfleet.store import Store
from reliability_report import Reliability

from ._wrapped import write_spec

N = 4
ROOT = os.geteuid() == 0


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> int:
    """Write until the file system says it is full; returns the bytes written."""
    written = 0
    with open(directory / "filler", "wb", buffering=0) as out:
        try:
            while True:
                written += out.write(b"\0" * 4096) or 0
                os.fsync(out.fileno())
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    return written


@pytest.fixture
def read_only_area(tmp_path: Path) -> Iterator[Path]:
    if not ROOT:
        area = tmp_path / "ro"
        area.mkdir(mode=0o555)
        yield area
        area.chmod(0o755)
        return
    with _tmpfs(tmp_path / "ro", "size=1m,ro") as area:
        yield area


@pytest.fixture
def full_area(tmp_path: Path) -> Iterator[Path]:
    if not ROOT:
        pytest.skip("a full file system needs a tmpfs mount, which needs root (CI runs as root)")
    with _tmpfs(tmp_path / "full", "size=256k") as area:
        assert _fill(area) > 0
        yield area


def _submit_into(area: Path, tmp_path: Path, db: Path) -> tuple[int, str, list[str]]:  # noqa: F811
    spec = write_spec(tmp_path / "disk.toml", "disk", "local", N, "true")
    text = spec.read_text().replace(f'working_dir = "{tmp_path / "disk"}"',
                                    f'working_dir = "{area / "disk"}"')  # fmt: skip
    spec.write_text(text)
    result = run_jobfleet("submit", str(spec), "--no-runner")
    with Store(db) as store:
        stored = [r.name for r in store.list_jobs()]
    return result.code, result.error_line if result.code else result.err, stored


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_unwritable_working_area_stores_nothing(
    kind: str,
    tmp_path: Path,
    db: Path,  # noqa: F811
    reliability: Reliability,
    request: pytest.FixtureRequest,
) -> None:
    """``jobfleet submit`` into a read-only or full working area: it fails with one error
    line naming the working directory, and the store holds no trace of the job."""
    area: Path = request.getfixturevalue("read_only_area" if kind == "read-only" else "full_area")
    code, error, stored = _submit_into(area, tmp_path, db)
    reliability.record(
        backend="local", cases=1, unit="submissions", faults=1,
        lost=int(bool(stored)) + int(code == 0),
        detail=f"working area {kind} ({'tmpfs' if ROOT else 'chmod 0o555'}): {error}",
    )  # fmt: skip
    assert code != 0
    assert str(area / "disk") in error
    assert "nothing was stored" in error
    assert stored == []

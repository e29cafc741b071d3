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


MANY = 400


@pytest.mark.skipif(not ROOT, reason="a file system filling up needs a tmpfs mount (root; CI)")
def test_disk_filling_up_during_submission_then_resume(
    tmp_path: Path,
    db: Path,  # noqa: F811
    reliability: Reliability,
) -> None:
    """The working area fills up half-way through preparing 400 subjobs: one error line
    naming the path; every stored subjob is either submitted or still init; after space
    is freed, ``submit --resume`` sends exactly the rest and each subjob runs once."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with _tmpfs(tmp_path / "small", "size=512k") as area:
        spec = write_spec(
            tmp_path / "filling.toml", "filling", "local", MANY, f"echo once >> {marks}/$1.mark"
        )
        text = spec.read_text().replace(f'working_dir = "{tmp_path / "filling"}"',
                                        f'working_dir = "{area / "filling"}"')  # fmt: skip
        spec.write_text(text)
        first = run_jobfleet("submit", str(spec), "--no-runner", timeout=120)
        with Store(db) as store:
            record = store.get_job("filling")
            before = {s.subjob_id: s.status for s in store.subjobs(record.id)}
        prepared = sum(1 for d in (area / "filling").iterdir() if d.is_dir())
        subprocess.run(["mount", "-o", "remount,size=64m", str(area)], check=True)
        resumed = run_jobfleet("submit", str(spec), "--resume", "filling", timeout=120)
        watched = run_jobfleet("watch", "filling", "--interval", "0.2", "--quiet", timeout=240)
        with Store(db) as store:
            after = {s.subjob_id: s.status for s in store.subjobs(record.id)}
    runs = {int(p.stem): len(p.read_text().splitlines()) for p in marks.glob("*.mark")}
    sent_first = sum(1 for s in before.values() if s != "init")
    reliability.record(
        backend="local", cases=MANY, unit="subjobs", faults=1,
        lost=MANY - sum(1 for s in after.values() if s == "completed"),
        duplicated=sum(1 for c in runs.values() if c > 1),
        detail=f"tmpfs of 512 KiB full after {prepared} of {MANY} working directories, "
        f"{sent_first} subjobs recorded as submitted; "
        f"first error: {first.err.strip()[:160]}",
    )  # fmt: skip
    assert first.code != 0
    assert str(area) in first.error_line
    assert set(before) == set(range(MANY))
    assert set(before.values()) <= {"init", "submitted"}
    assert 0 < prepared < MANY  # the disk really filled up half-way
    assert resumed.code == 0, resumed.err
    assert watched.code == 0, watched.err
    assert set(after.values()) == {"completed"}
    assert runs == dict.fromkeys(range(MANY), 1)

"""Pytest plugin: the figures of the reliability suites, written to ``docs/reliability.md``.

Tests under ``tests/conformance``, ``tests/faults`` and ``tests/badinput`` are
listed in the report, one row per test (or per parametrisation), with the first
line of their docstring as "what it does" and their outcome. A test adds its
figures through the ``reliability`` fixture::

    def test_watcher_killed(reliability: Reliability) -> None:
        ...
        reliability.record(backend="slurm", cases=500, unit="subjobs", faults=3,
                           lost=len(missing), duplicated=len(twice),
                           detail="watcher SIGKILLed 3 times")

Record the figures *before* asserting on them, so a failing run reports what
it lost. ``pytest --reliability-report=docs/reliability.md`` writes the report
at the end of the session (``ci/test.sh`` does); nothing is written otherwise.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["SECTIONS", "Reliability"]

# Directory under tests/ -> section title, in report order.
SECTIONS = {
    "conformance": "Conformance: the same job on every backend",
    "faults": "Faults injected on purpose",
    "badinput": "Bad input",
}


@dataclass
class Record:
    backend: str
    cases: int
    unit: str
    faults: int
    lost: int
    duplicated: int
    detail: str


@dataclass
class Row:
    nodeid: str
    section: str
    what: str
    outcome: str = "not run"
    records: list[Record] = field(default_factory=list)


class Reliability:
    """What one test did and what it lost; see the module docstring."""

    def __init__(self, row: Row | None) -> None:
        self._row = row

    def record(
        self,
        *,
        cases: int,
        unit: str = "subjobs",
        faults: int = 0,
        lost: int,
        duplicated: int = 0,
        backend: str = "",
        detail: str = "",
    ) -> None:
        """``cases`` things (``unit``: subjobs, documents, strings...) went through the test,
        ``faults`` faults were injected, ``lost`` of them were lost (or wrongly accepted),
        ``duplicated`` ran more than once."""
        if self._row is not None:
            self._row.records.append(
                Record(backend, cases, unit, faults, lost, duplicated, " ".join(detail.split()))
            )


_ROWS: dict[str, Row] = {}
_REPORT_KEY = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        default=None,
        help="write the reliability figures (tests/conformance, faults, badinput) to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    target = config.getoption("--reliability-report")
    if target:
        config.stash[_REPORT_KEY] = Path(target)


def _section(item: pytest.Item) -> str | None:
    parts = Path(str(item.path)).parts
    if "tests" not in parts:
        return None
    below = parts[len(parts) - 1 - parts[::-1].index("tests") + 1 :]
    return below[0] if below and below[0] in SECTIONS else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        section = _section(item)
        if section is None:
            continue
        doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
        what = " ".join(doc.strip().split("\n\n")[0].split()) or item.name
        _ROWS[item.nodeid] = Row(item.nodeid, section, what)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    row = _ROWS.get(item.nodeid)
    if row is not None:
        if report.skipped and row.outcome == "not run":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            row.outcome = f"skipped ({str(reason).removeprefix('Skipped: ')})"
        elif report.failed:
            row.outcome = "FAILED" if report.when == "call" else f"ERROR ({report.when})"
        elif report.when == "call" and report.passed:
            row.outcome = "passed"
    return report


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Reliability:
    """Record what this test did and lost, for ``docs/reliability.md``."""
    return Reliability(_ROWS.get(request.node.nodeid))


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.stash.get(_REPORT_KEY, None)
    if target is None or not _ROWS:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(list(_ROWS.values())), encoding="utf-8")


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _test_name(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    return f"`{Path(path).name}::{name}`"


def render(rows: list[Row]) -> str:
    """The whole report as Markdown."""
    records = [r for row in rows for r in row.records]
    failed = [row for row in rows if row.outcome != "passed" and "skipped" not in row.outcome]
    lines = [
        "# Reliability figures",
        "",
        "Generated by the test run (`pytest --reliability-report=docs/reliability.md`, which",
        "`ci/test.sh` runs); do not edit by hand. Each row is one test: what it did, how many",
        "subjobs (or documents, strings...) went through it, how many faults it injected, and",
        "what was lost or ran twice. The tests assert that both are zero.",
        "",
        f"- Run: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit "
        f"`{_commit()}`, Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}",
        f"- Tests: {len(rows)} ({sum(r.outcome == 'passed' for r in rows)} passed, "
        f"{sum('skipped' in r.outcome for r in rows)} skipped, {len(failed)} failed or not run)",
        f"- Totals over all recorded runs: {sum(r.cases for r in records):,} cases, "
        f"{sum(r.faults for r in records):,} faults injected, "
        f"{sum(r.lost for r in records)} lost, {sum(r.duplicated for r in records)} run twice",
        "",
    ]
    for section, title in SECTIONS.items():
        members = [row for row in rows if row.section == section]
        if not members:
            continue
        lines += [
            f"## {title}",
            "",
            "| Test | What it does | Backend | Cases | Faults | Lost | Run twice | Result |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for row in members:
            for record in row.records or [None]:  # type: ignore[list-item]
                what = row.what + (f" ({record.detail})" if record and record.detail else "")
                figures = (
                    [
                        record.backend or "-",
                        f"{record.cases:,} {record.unit}",
                        f"{record.faults:,}",
                        str(record.lost),
                        str(record.duplicated),
                    ]
                    if record
                    else ["-", "-", "-", "-", "-"]
                )
                cells = [_test_name(row.nodeid), what, *figures, row.outcome]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)

"""Smoke test of the benchmark harness: one quick run of two scenarios writes a report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_run_all_quick_writes_sections_with_ratios(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    script = REPO / "benchmarks" / "run_all.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--only", "local", "store", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert "## Summary" in text
    assert "## 1. Local dispatch" in text
    assert "## 5. Store: status updates" in text
    assert "## 2." not in text  # --only left the other scenarios out
    local = text.split("## 1. Local dispatch", 1)[1].split("\n## ", 1)[0]
    ratios = [float(r) for r in re.findall(r"\| (\d+\.\d+)x \|", local)]
    places = 2 if "subjobs, `jobfleet submit --watch`, tmpfs" in local else 1
    assert len(ratios) == 2 * places and all(r > 0 for r in ratios), local
    # Every target of the two sections reaches the summary with a verdict.
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"\| (met|\*\*missed\*\*) \|", summary)) >= 5, summary

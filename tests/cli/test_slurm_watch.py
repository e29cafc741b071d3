"""The command line on the real Slurm cluster: several terminals, one poller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SPEC = """
name = "{name}"
cmd = ["bash", "-c", "until [ -e {gate} ]; do sleep 0.2; done; echo $1 > out.txt", "x"]
output_patterns = ["out.txt"]
working_dir = "work/{name}"
[split]
arguments = {{ range = [0, {n}] }}
[backend]
name = "slurm"
poll_interval = 0.5
"""


def _jobfleet(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobfleet.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_job_submitted_while_another_process_watches(tmp_path: Path) -> None:
    # A squeue shim records which process asked for statuses: one poller must do it all.
    real = subprocess.run(["which", "squeue"], capture_output=True, text=True).stdout.strip()
    log = tmp_path / "squeue-callers"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "squeue"
    shim.write_text(
        f'#!/bin/bash\ncase "$*" in *--Format=*) echo "$PPID" >> {log};; esac\nexec {real} "$@"\n'
    )
    shim.chmod(0o755)
    env = {**os.environ, "JOBFLEET_DB": str(tmp_path / "store.db"), "JOBFLEET_LEASE_TTL": "5",
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}  # fmt: skip
    # The first job runs until the test opens its gate: its watcher outlives the second job.
    gates = {"first": tmp_path / "gate-first", "second": tmp_path / "gate-second"}
    gates["second"].touch()
    for name, n in (("first", 3), ("second", 4)):
        (tmp_path / f"{name}.toml").write_text(SPEC.format(name=name, gate=gates[name], n=n))

    submit_first = _jobfleet("submit", str(tmp_path / "first.toml"), env=env)
    assert submit_first.wait(timeout=60) == 0, submit_first.communicate()
    watcher = _jobfleet("watch", "first", "--interval", "0.5", env=env)
    wait_until(lambda: log.exists(), timeout=60)  # the watcher polls (and holds the lease)
    submit_second = _jobfleet("submit", str(tmp_path / "second.toml"), env=env)
    assert submit_second.wait(timeout=60) == 0, submit_second.communicate()
    second_watcher = _jobfleet("watch", "second", "--interval", "0.5", env=env)
    assert second_watcher.wait(timeout=120) == 0, second_watcher.communicate()
    assert watcher.poll() is None  # still watching the first job
    gates["first"].touch()
    assert watcher.wait(timeout=120) == 0, watcher.communicate()

    status = subprocess.run(
        [sys.executable, "-m", "jobfleet.cli", "status", "second", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    doc = json.loads(status.stdout)
    assert doc["status"] == "completed" and doc["counts"] == {"completed": 4}
    for i in range(4):
        assert (
            tmp_path / "work" / "second" / "output" / str(i) / "out.txt"
        ).read_text() == f"{i}\n"
    pollers = set(log.read_text().split())
    assert len(pollers) == 1, f"status queries came from {len(pollers)} processes"

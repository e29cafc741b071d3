"""The DIRAC backend end to end against the fake DIRAC (tests/fakesched/dirac.py).

The fake runs every DIRAC job for real, in a fresh scratch directory holding only
its input sandbox, and keeps the output sandbox until dirac-wms-job-get-output
copies it out: a job that only worked in its submit-side directory fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakesched.dirac import JDLError, configure_dirac, expand_parametric, read_jdl
from fakesched.fixture import FakeHandle, fake_scheduler_fixture
from helpers import wait_until
from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, range_arguments
from jobfleet.backends.dirac import Dirac
from jobfleet.commands import command_calls
from jobfleet.fleet.driver import driver_availability
from jobfleet.workdir import EXIT_CODE_FILE

dirac = fake_scheduler_fixture("dirac", queue_delay=0.05, max_running=16, tick=0.01)

# Records where it ran, what it was given and what it read; "exit=N" sets its exit code.
PROBE = """\
import json, os, sys
inputs = json.load(open("__BACKEND_INPUT_FILES__.json"))
local = [open(f).read() for f in inputs if not f.startswith("LFN:")]
os.makedirs("out/deep", exist_ok=True)
record = {"cwd": os.getcwd(), "args": sys.argv[1:], "inputs": inputs, "read": local,
          "jobid": os.environ.get("DIRACJOBID"), "files": sorted(os.listdir("."))}
json.dump(record, open("out/deep/probe.json", "w"))
print("subjob says", sys.argv[1:])
sys.exit(int(sys.argv[-1][5:]) if sys.argv[-1:] and sys.argv[-1].startswith("exit=") else 0)
"""


# The same for the wide test, in bash: fifty Python start-ups cost seconds on two cores.
PROBE_SH = """\
mkdir -p out/deep
{ echo "cwd=$PWD"; echo "jobid=$DIRACJOBID"; echo "inputs=$(cat __BACKEND_INPUT_FILES__.json)"
  for f in jobfleet-inputs/*; do echo "read=$(cat "$f")"; done; echo "files=$(ls | tr '\\n' ' ')"
} > out/deep/probe.txt
echo "subjob says $*"
"""


def _job(tmp_path: Path, name: str) -> Job:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    job = Job(name)
    job.working_dir = tmp_path / "work" / name
    job.output_dir = tmp_path / "out" / name
    job.cmd = [sys.executable, "probe.py"]
    job.input_sandbox_files = [probe]
    job.output_patterns = ["out/**/*.json"]
    job.backend_args = {"walltime": 3600}
    return job


def _poll_to_the_end(backend: Dirac, job: Job, timeout: float = 60) -> list[dict[str, int]]:
    """Poll until the job ends; the command calls of every poll."""
    per_poll = []

    def step() -> bool:
        before = command_calls()
        backend.poll(force=True)
        after = command_calls()
        per_poll.append(
            {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k)}
        )
        return job.status.is_final

    wait_until(step, timeout=timeout, step=0.1)
    return per_poll


def _probe(unit: Job, where: str = "output_dir") -> dict[str, object]:
    """What the probe recorded, as collected (or, for a failed unit, in its working dir)."""
    path = getattr(unit, where) / "out/deep/probe.json"
    record: dict[str, object] = json.loads(path.read_text())
    return record


def test_fifty_subjobs_over_files_one_submission(dirac: FakeHandle, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(50):
        (data / f"run{i:02d}.txt").write_text(f"content {i}")
    job = _job(tmp_path, "files")
    (tmp_path / "probe.sh").write_text(PROBE_SH)
    job.cmd, job.input_sandbox_files = ["bash", "probe.sh"], [tmp_path / "probe.sh"]
    job.output_patterns = ["out/**/*.txt"]
    job.input_files = sorted(str(p) for p in data.iterdir())
    job.max_files_per_subjob = 1
    backend = Dirac()
    before = command_calls()
    backend.submit(job)
    assert command_calls()["dirac-wms-job-submit"] - before.get("dirac-wms-job-submit", 0) == 1
    assert len(job.subjobs) == 50 and len({s.native_id for s in job.subjobs.values()}) == 50
    per_poll = _poll_to_the_end(backend, job)
    assert all(calls.get("dirac-wms-job-status") == 1 for calls in per_poll)
    assert all(calls.get("dirac-wms-job-get-output", 0) <= 1 for calls in per_poll)
    assert job.status == "completed" and job.status_counts() == {"completed": 50}
    cwds = set()
    for i, sub in job.subjobs.items():
        # Collected into output_dir/<i>/out/deep/ after dirac-wms-job-get-output.
        text = (sub.output_dir / "out/deep/probe.txt").read_text().splitlines()
        record = dict(line.split("=", 1) for line in text)
        assert record["read"] == f"content {i}"  # its own input file travelled with it
        assert record["inputs"] == f'["jobfleet-inputs/run{i:02d}.txt"]'
        assert record["jobid"] == sub.native_id
        assert "jobfleet-dirac.sh" in record["files"] and "probe.sh" in record["files"]
        cwds.add(record["cwd"])
        assert (sub.working_dir / "stdout").read_text() == "subjob says \n"
        assert (sub.working_dir / EXIT_CODE_FILE).read_text().strip() == "0"
    assert len(cwds) == 50  # every DIRAC job had its own scratch directory...
    assert not any(c.startswith(str(tmp_path / "work")) for c in cwds)  # ...never the submit side


def test_argument_splitting_exit_codes_and_input_data(dirac: FakeHandle, tmp_path: Path) -> None:
    job = _job(tmp_path, "args")
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 6))
    job.split()
    for sub in job.subjobs.values():
        sub.args = ["it's a $HOME", "`touch pwned`", f"exit={sub.id % 3}"]
        sub.input_files = [f"LFN:/vo/user/in{sub.id}.root"]
    backend = Dirac()
    backend.submit(job)
    ids = [s.native_id for s in job.subjobs.values()]
    assert ids == sorted(ids, key=int)  # parameter order is subjob order
    per_poll = _poll_to_the_end(backend, job)
    assert all(calls.get("dirac-wms-job-status") == 1 for calls in per_poll)
    by_id = {j.id: j for j in dirac.jobs()}
    for i, sub in job.subjobs.items():
        code = i % 3
        assert sub.exit_code == code
        assert (sub.status, sub.reason) == (("completed", None) if code == 0
                                            else ("failed", f"exit code {code}"))  # fmt: skip
        recorded = _probe(sub, "output_dir" if code == 0 else "working_dir")
        assert recorded["args"] == ["it's a $HOME", "`touch pwned`", f"exit={code}"]
        assert by_id[sub.native_id or ""].attrs["InputData"] == [f"LFN:/vo/user/in{i}.root"]
        assert by_id[sub.native_id or ""].name == f"args_{i}"
    assert not list(tmp_path.rglob("pwned"))


def test_single_job_and_cancel(dirac: FakeHandle, tmp_path: Path) -> None:
    job = _job(tmp_path, "single")
    job.cmd = ["bash", "-c", "echo started; sleep 30"]
    sleeper = _job(tmp_path, "sleepers")
    sleeper.cmd = ["sleep", "30"]
    sleeper.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, 3)
    )
    backend = Dirac(backend_args={"min_poll_interval": 0})
    backend.submit([job, sleeper])
    assert job.native_id is not None and not job.subjobs
    wait_until(lambda: backend.poll() is not None and job.status == "running", timeout=20)
    backend.cancel(job)
    assert (job.status, job.reason) == ("failed", "cancelled")
    backend.cancel(sleeper.subjobs[1])
    backend.cancel(sleeper)
    assert {s.reason for s in sleeper.subjobs.values()} == {"cancelled"}
    ids = [job.native_id or "", *(s.native_id or "" for s in sleeper.subjobs.values())]
    status = dirac.run("dirac-wms-job-status", *ids)
    assert status.stdout.count("Status=Killed;") == 4
    backend.poll(force=True)  # a late report changes nothing
    assert job.reason == "cancelled" and sleeper.status == "failed"


def test_transient_failures_and_a_lost_submit_reply(dirac: FakeHandle, tmp_path: Path) -> None:
    dirac.configure(fail_rate=0.3, seed=7, fail_after=True)
    job = _job(tmp_path, "flaky")
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 8))
    backend = Dirac()
    backend.submit(job)
    _poll_to_the_end(backend, job)
    assert job.status_counts() == {"completed": 8}
    assert len(dirac.jobs()) == 8  # no subjob was queued twice
    calls = dirac.calls()
    assert calls["dirac-wms-job-submit"] >= 1 and calls["dirac-wms-job-status"] >= 2
    assert all(_probe(s)["args"] == [str(i)] for i, s in job.subjobs.items())


def test_submit_reply_lost_is_found_by_its_tag(dirac: FakeHandle, tmp_path: Path) -> None:
    dirac.configure(fail_rate=1.0, fail_after=True, max_consecutive_failures=1,
                    fail_commands=["dirac-wms-job-submit"])  # fmt: skip
    job = _job(tmp_path, "tagged")
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 3))
    backend = Dirac()
    backend.submit(job)
    assert dirac.calls()["dirac-wms-job-submit"] == 1  # not sent again...
    assert dirac.calls()["dirac-wms-select-jobs"] == 1  # ...found by its JobGroup instead
    assert [s.native_id for s in job.subjobs.values()] == [j.id for j in dirac.jobs()]
    _poll_to_the_end(backend, job)
    assert job.status == "completed"


def test_parametric_limit_is_learnt(dirac: FakeHandle, tmp_path: Path) -> None:
    configure_dirac(dirac, max_parametric_jobs=4)
    job = _job(tmp_path, "limited")
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 10))
    backend = Dirac()
    backend.submit(job)
    assert dirac.calls()["dirac-wms-job-submit"] == 4  # refused once, then 4 + 4 + 2
    assert backend.max_array_size() == 4
    assert [len([j for j in dirac.jobs() if j.number == n]) for n in
            sorted({j.number for j in dirac.jobs()})] == [4, 4, 2]  # fmt: skip
    _poll_to_the_end(backend, job)
    assert job.status_counts() == {"completed": 10}


def test_missing_output_sandbox_fails_after_retries(dirac: FakeHandle, tmp_path: Path) -> None:
    job = _job(tmp_path, "nosandbox")
    job.cmd = ["bash", "-c", 'exit "$1"', "x"]
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, 4))
    backend = Dirac(backend_args={"output_retrieval_attempts": 2})
    backend.submit(job)
    wait_until(lambda: all(not j.active for j in dirac.jobs()), timeout=20)
    for sandbox in (dirac.state_dir / "dirac" / "output").iterdir():
        shutil.rmtree(sandbox)  # the sandbox store lost them all
    backend.poll(force=True)
    done, failed = job.subjobs[0], job.subjobs[3]
    assert done.status == "submitted"  # Done, but its sandbox may still come: try again
    assert (failed.status, failed.exit_code) == ("failed", None)
    assert failed.reason == "Application Finished With Errors"  # no exit code to tell more
    backend.poll(force=True)
    assert done.status == "failed" and done.reason is not None
    assert done.reason.startswith("output sandbox not retrieved: No Output sandbox found for job")


def test_driver_is_available_with_a_proxy(dirac: FakeHandle) -> None:
    assert driver_availability("dirac") == (True, "")
    dirac.configure(fail_rate=1.0, fail_commands=["dirac-proxy-info"], max_consecutive_failures=9)
    usable, why = driver_availability("dirac")
    assert not usable and why.startswith("no valid DIRAC proxy")


@pytest.mark.parametrize("pattern", ["*.txt", "res/**", "*"])
def test_outputs_keep_their_paths(dirac: FakeHandle, tmp_path: Path, pattern: str) -> None:
    job = _job(tmp_path, "paths")
    job.cmd = ["bash", "-c", "mkdir -p res/a && echo 1 > res/a/x.txt && echo 2 > top.txt"]
    job.output_patterns = [pattern]
    backend = Dirac()
    backend.submit(job)
    _poll_to_the_end(backend, job)
    assert job.status == "completed"
    found = sorted(str(p.relative_to(job.output_dir)) for p in job.output_dir.rglob("*.txt"))
    assert found == (["top.txt"] if pattern == "*.txt" else ["res/a/x.txt", "top.txt"]
                     if pattern == "*" else ["res/a/x.txt"])  # fmt: skip
    assert not list(job.output_dir.glob(".dirac-output*"))  # the download area is never an output


def test_golden_jdl_as_dirac_expands_it() -> None:
    """The parametric golden JDL, read and expanded with ClassAdLight / ParametricJob rules."""
    golden = Path(__file__).parent / "golden" / "dirac_parametric.jdl"
    jobs = expand_parametric(read_jdl(golden.read_text()), limit=100)
    assert [j["Arguments"] for j in jobs] == [
        f'"jobfleet-dirac.sh dirac_0-2.tar.gz {i}"' for i in range(3)
    ]
    assert [j["JobName"] for j in jobs] == ['"scan_0"', '"scan_1"', '"scan_2"']
    assert [j["InputData"] for j in jobs] == [
        '{"LFN:/belle/user/scan/in0.root"}', '{"LFN:/belle/user/scan/in1.root"}', "{}",
    ]  # fmt: skip
    assert all("%" not in value for job in jobs for value in job.values())
    with pytest.raises(JDLError, match="exceeds the limit of 2"):
        expand_parametric(read_jdl(golden.read_text()), limit=2)


SPEC = """
name = "grid"
cmd = ["bash", "-c", "m={marks}/$1; [ -e $m ] || {{ touch $m; exit 3; }}; echo $1 > res.txt", "x"]
output_patterns = ["res.txt"]
working_dir = "work/grid"
max_retries = 1
max_failed_fraction = 1.0
[split]
arguments = {{ range = [0, 6] }}
[resources]
walltime = "01:00:00"
[backend]
name = "dirac"
poll_interval = 0.2
tags = ["8GBMemory"]
"""


def test_command_line_with_retries(dirac: FakeHandle, tmp_path: Path) -> None:
    """Every subjob fails once; the retries go out as ONE parametric job of all six."""
    (tmp_path / "marks").mkdir()
    (tmp_path / "grid.toml").write_text(SPEC.format(marks=tmp_path / "marks"))
    env = {**os.environ, "JOBFLEET_DB": str(tmp_path / "store.db")}

    def jobfleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobfleet.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    submitted = jobfleet("submit", str(tmp_path / "grid.toml"))
    assert submitted.returncode == 0, submitted.stderr
    watched = jobfleet("watch", "grid", "--interval", "0.2", "--quiet")
    assert watched.returncode == 0, watched.stderr
    doc = json.loads(jobfleet("status", "grid", "--json").stdout)
    assert doc["status"] == "completed" and doc["counts"] == {"completed": 6}
    for i in range(6):
        assert (tmp_path / "work/grid/output" / str(i) / "res.txt").read_text() == f"{i}\n"
    submissions = sorted({j.number for j in dirac.jobs()})
    assert dirac.calls()["dirac-wms-job-submit"] == len(submissions) == 2
    assert all(j.attrs["JobName"].startswith("grid_") for j in dirac.jobs())

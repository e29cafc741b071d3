"""The fake LSF's bsub parsing and bjobs / bkill outputs (no daemon needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakesched.core import FakeScheduler, invoke
from fakesched.lsf import array_indices


@pytest.mark.parametrize(
    ("spec", "indices"),
    [("1-4", [1, 2, 3, 4]), ("1,3,5-7", [1, 3, 5, 6, 7]), ("1-9:4", [1, 5, 9]), ("2", [2])],
)
def test_array_index_lists(spec: str, indices: list[int]) -> None:
    assert array_indices(spec) == indices


def test_bsub_script_on_stdin_with_directives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake = FakeScheduler(tmp_path / "state")
    script = "#!/bin/bash\n#BSUB -J 'arr[1,3]%1'\n#BSUB -q short\n#BSUB -o out.%J.%I\necho hi\n"
    code, out, err = invoke(fake, "lsf", "bsub", ["-q", "long"], script)
    assert (code, out, err) == (0, "Job <1> is submitted to queue <long>.\n", "")
    first, second = fake.jobs()
    assert (first.id, second.id) == ("1[1]", "1[3]")  # the command line wins over #BSUB
    assert first.argv[0] == "bash" and Path(first.argv[1]).read_text() == script
    assert second.stdout == str(tmp_path / "out.1.3") == second.stderr
    assert second.env["LSB_JOBINDEX"] == "3" and second.env["LSB_JOBNAME"] == "arr[3]"


def test_bsub_command_with_cwd_and_env(tmp_path: Path) -> None:
    fake = FakeScheduler(tmp_path / "state")
    args = ["-env", "none", "-cwd", str(tmp_path / "w%J"), "-o", "o", "-e", "e", "/bin/echo", "x"]
    code, out, _ = invoke(fake, "lsf", "bsub", args)
    (job,) = fake.jobs()
    assert code == 0 and out == "Job <1> is submitted to queue <normal>.\n"
    assert job.cwd == str(tmp_path / "w1") and job.argv == ["/bin/echo", "x"]
    assert (job.stdout, job.stderr) == (f"{tmp_path}/w1/o", f"{tmp_path}/w1/e")
    assert job.env["LSB_JOBINDEX"] == "0" and "FAKESCHED_STATE" not in job.env


def test_bjobs_json_error_records_and_bkill(tmp_path: Path) -> None:
    fake = FakeScheduler(tmp_path / "state")
    invoke(fake, "lsf", "bsub", ["-J", "a[1-2]", "/bin/true"])
    code, out, _ = invoke(fake, "lsf", "bjobs", ["-json", "-o", "jobid jobindex stat", "1", "7"])
    document = json.loads(out)
    assert code == 255 and document["COMMAND"] == "bjobs"
    assert document["RECORDS"] == [
        {"JOBID": "1", "JOBINDEX": "1", "STAT": "PEND"},
        {"JOBID": "1", "JOBINDEX": "2", "STAT": "PEND"},
        {"JOBID": "7", "ERROR": "Job <7> is not found"},
    ]
    assert invoke(fake, "lsf", "bkill", ["1[2]"])[1] == "Job <1[2]> is being terminated\n"
    code, _, err = invoke(fake, "lsf", "bkill", ["1[2]", "9"])
    assert code == 255 and err == (
        "Job <1[2]>: Job has already finished\nJob <9>: No matching job found\n"
    )
    code, out, _ = invoke(fake, "lsf", "bjobs", ["-noheader", "-o", "jobid jobindex stat"])
    assert (code, out) == (0, "JOBID JOBINDEX STAT\n1 1 PEND\n")
    invoke(fake, "lsf", "bkill", ["1"])
    assert invoke(fake, "lsf", "bjobs", []) == (255, "", "No unfinished job found\n")


def test_bad_queue_and_array(tmp_path: Path) -> None:
    fake = FakeScheduler(tmp_path / "state")
    assert invoke(fake, "lsf", "bsub", ["-q", "no such", "true"])[0] == 255
    code, _, err = invoke(fake, "lsf", "bsub", ["-J", "a[0-3]", "true"])
    assert code == 255 and "Job not submitted" in err
    assert fake.jobs() == []

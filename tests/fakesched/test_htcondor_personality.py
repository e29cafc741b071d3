"""The fake HTCondor's submit description parser and outputs (no daemon needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakesched.core import FakeScheduler, invoke
from fakesched.htcondor import parse_submit, split_arguments


@pytest.mark.parametrize(
    ("value", "args"),
    [  # the examples of the condor_submit manual, "arguments"
        ('"3 simple arguments"', ["3", "simple", "arguments"]),
        ("\"one 'two with spaces' 3\"", ["one", "two with spaces", "3"]),
        ('"one ""two"" \'spacey \'\'quoted\'\' argument\'"',
         ["one", '"two"', "spacey 'quoted' argument"]),
        ("submit.sh", ["submit.sh"]),
    ],
)  # fmt: skip
def test_arguments_syntax(value: str, args: list[str]) -> None:
    assert split_arguments(value) == args


def test_queue_statements_and_macros(tmp_path: Path) -> None:
    (tmp_path / "items.txt").write_text("x 1\ny 2\n")
    jobs = parse_submit(
        'executable = /bin/echo\nMy.Tag = "t"\nout = o.$(Process)\n'
        "queue 2\nqueue name, n from (\n a 1\n b 2\n)\nqueue v in (p, q)\n"
        "queue 2 name,n from items.txt\n",
        tmp_path,
    )
    assert len(jobs) == 2 + 2 + 2 + 4
    assert jobs[2][1] == {"name": "a", "n": "1"} and jobs[5][1] == {"v": "q"}
    assert jobs[6][1] == jobs[7][1] == {"name": "x", "n": "1"}
    assert jobs[0][0]["+Tag"] == '"t"'


def test_submit_runs_procs_with_cluster_and_process_expanded(tmp_path: Path) -> None:
    fake = FakeScheduler(tmp_path / "state")
    sub = tmp_path / "job.sub"
    sub.write_text(
        "executable = /bin/sh\narguments = \"-c 'echo $(Cluster).$(Process) $(sj)'\"\n"
        "initialdir = " + str(tmp_path) + "/d$(sj)\noutput = out\nrequest_memory = 2 GB\n"
        '+Owner_Note = "x"\nqueue sj from (\n7\n9\n)\n'
    )
    code, out, err = invoke(fake, "htcondor", "condor_submit", ["-terse", str(sub)])
    assert (code, out, err) == (0, "1.0 - 1.1\n", "")
    first, second = fake.jobs()
    assert first.argv == ["/bin/sh", "-c", "echo 1.0 7"] and second.cwd == f"{tmp_path}/d9"
    assert first.stdout == f"{tmp_path}/d7/out" and first.attrs["RequestMemory"] == 2048
    code, out, _ = invoke(
        fake, "htcondor", "condor_q", ["-json", "-attributes", "ClusterId,ProcId,Owner_Note", "1"]
    )
    ads = json.loads(out)
    assert ads == [{"ClusterId": 1, "Owner_Note": "x", "ProcId": 0},
                   {"ClusterId": 1, "Owner_Note": "x", "ProcId": 1}]  # fmt: skip
    code, out, _ = invoke(fake, "htcondor", "condor_q", ["-json", "-constraint",
                                                         'Owner_Note == "y"'])  # fmt: skip
    assert (code, out) == (0, "")


def test_refusals_look_like_condor_submit(tmp_path: Path) -> None:
    fake = FakeScheduler(tmp_path / "state")
    code, _, err = invoke(fake, "htcondor", "condor_submit", ["-"], "executable = /nope\nqueue\n")
    assert code == 1 and "ERROR: Executable file /nope does not exist" in err
    code, _, err = invoke(fake, "htcondor", "condor_submit", ["-"],
                          "universe = java\nexecutable = /bin/true\nqueue\n")  # fmt: skip
    assert code == 1 and "I don't know about the 'java' universe" in err
    assert fake.jobs() == []


def test_condor_rm_of_unknown_jobs_exits_one(tmp_path: Path) -> None:
    fake = FakeScheduler(tmp_path / "state")
    invoke(fake, "htcondor", "condor_submit", ["-"], "executable = /bin/true\nqueue 2\n")
    code, out, err = invoke(fake, "htcondor", "condor_rm", ["1.0", "5.0"])
    assert code == 1 and out == "Job 1.0 marked for removal\n" and "5.0" in err
    code, out, _ = invoke(fake, "htcondor", "condor_rm", ["1"])
    assert (code, out) == (0, "All jobs in cluster 1 have been marked for removal\n")

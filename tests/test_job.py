"""The Job / SubJob model: attributes, paths, statuses, JSON round trip."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from jobfleet import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    Job,
    JobStatus,
    MaxFilesSplitter,
    MaxSubjobsSplitter,
    SpecError,
    SplitterError,
    SubJob,
    range_arguments,
)


def test_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = Job("paths")
    job.working_dir = "work"
    job.output_dir = Path("out/../out2")
    job.input_sandbox_files = ["a.py", Path("lib")]
    assert job.working_dir == tmp_path / "work"
    assert job.output_dir == tmp_path / "out2"
    assert job.input_sandbox_files == [tmp_path / "a.py", tmp_path / "lib"]
    assert all(isinstance(p, Path) for p in job.input_sandbox_files)


def test_input_files_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = Job("inputs")
    job.input_files = ["rel.txt", Path("p.root"), "root://eos//a.root", "file:///x/y", "LFN:/b/c"]
    assert job.input_files == [
        str(tmp_path / "rel.txt"),
        str(tmp_path / "p.root"),
        "root://eos//a.root",
        "file:///x/y",
        "LFN:/b/c",
    ]
    assert all(isinstance(f, str) for f in job.input_files)


def test_check_input_data_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    present = tmp_path / "present.txt"
    present.write_text("x")
    job = Job("check")
    job.input_files = [
        present,
        tmp_path / "missing.txt",
        present,
        f"file://{present}",
        f"file://{tmp_path}/gone.txt",
        "davs://host/data.root",
        "https://host/x",
        "davs://host/data.root",
        "LFN:/belle/grid.root",
    ]
    with caplog.at_level(logging.WARNING, logger="jobfleet"):
        job.check_input_data_files()
    assert job.input_files == [
        str(present),
        f"file://{present}",
        "davs://host/data.root",
        "https://host/x",
        "LFN:/belle/grid.root",
    ]
    text = caplog.text
    assert "missing.txt" in text and "gone.txt" in text and "more than once" in text


def test_subjob_inherits_from_parent(tmp_path: Path) -> None:
    job = Job("parent")
    job.working_dir = tmp_path / "w"
    job.output_dir = tmp_path / "o"
    job.cmd = ["echo"]
    job.args = ["--fast"]
    job.setup_cmds = ["export A=1"]
    job.backend_args = {"queue": "q"}
    sub = job.create_subjob(3, input_files=["a"], args=None)
    assert isinstance(sub, SubJob) and isinstance(sub, Job)
    assert sub.name == "parent_3"
    assert sub.working_dir == tmp_path / "w" / "3"
    assert sub.output_dir == tmp_path / "o" / "3"
    assert sub.cmd == ["echo"] and sub.setup_cmds == ["export A=1"]
    assert sub.backend_args == {"queue": "q"}
    assert sub.args == ["--fast"]  # no own arguments: the parent's apply
    sub.args = (7,)
    assert sub.args == [7]
    assert sub.parent is job and job.subjobs[3] is sub
    assert sub.subjobs == {}


def test_create_subjob_twice_keeps_first(caplog: pytest.LogCaptureFixture) -> None:
    job = Job("dup")
    first = job.create_subjob(0, args=[1])
    with caplog.at_level(logging.WARNING, logger="jobfleet"):
        again = job.create_subjob(0, args=[2])
    assert again is first and first.args == [1]
    assert "already has subjob 0" in caplog.text


def test_max_splitter_properties() -> None:
    job = Job("split")
    with pytest.raises(SplitterError, match="no splitter with max_subjobs"):
        _ = job.max_subjobs
    with pytest.raises(SplitterError, match="no MaxFilesSplitter"):
        _ = job.max_files_per_subjob
    job.max_files_per_subjob = 3
    assert isinstance(job.splitter, MaxFilesSplitter) and job.max_files_per_subjob == 3
    job.max_subjobs = 5
    assert isinstance(job.splitter, MaxSubjobsSplitter) and job.max_subjobs == 5
    with pytest.raises(ValueError, match="max_subjobs"):
        job.max_subjobs = 0


def test_status_is_str_enum_and_parent_reports_lowest() -> None:
    job = Job("agg")
    assert job.status == "init" and job.status is JobStatus.init
    for i in range(3):
        job.create_subjob(i)
    subs = list(job.subjobs.values())
    subs[0].set_status("submitted")
    assert job.status == "init"
    for sub in subs:
        sub.set_status("running")
    assert job.status == "running"
    subs[0].set_status("completed", exit_code=0)
    subs[1].set_status("failed", exit_code=2, reason="exit code 2")
    assert job.status == "running"
    subs[2].set_status("completed", exit_code=0)
    assert job.status == "failed"
    assert job.status_counts() == {"failed": 1, "completed": 2}
    assert [s.value for s in JobStatus] == ["init", "submitted", "running", "failed", "completed"]


def test_status_never_moves_backwards_by_accident() -> None:
    job = Job("fwd")
    assert job.set_status("running")
    assert not job.set_status("submitted")
    assert job.set_status("completed", exit_code=0)
    assert not job.set_status("failed", exit_code=1)
    assert not job.set_status("running")
    assert job.status == "completed" and job.exit_code == 0
    # an explicit assignment (or force) is a deliberate reset
    job.status = "init"
    assert job.status == "init" and job.exit_code is None


def test_status_reading_is_silent_and_transition_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job("quiet")
    for i in range(2):
        job.create_subjob(i)
    with caplog.at_level(logging.DEBUG, logger="jobfleet"):
        for _ in range(5):
            assert job.status == "init"
        assert caplog.records == []
        job.subjobs[0].set_status("submitted")
        job.subjobs[0].set_status("submitted")
        job.subjobs[1].set_status("submitted")
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("quiet_0: init -> submitted") == 1
    assert messages.count("quiet: init -> submitted") == 1


def test_parent_counts_follow_direct_dict_edits() -> None:
    job = Job("edit")
    for i in range(3):
        job.create_subjob(i)
    job.subjobs[0].set_status("completed", exit_code=0)
    del job.subjobs[1]
    del job.subjobs[2]
    assert job.status == "completed"
    job.subjobs = {}
    assert job.status == "init"


def test_ready_and_update_status_without_result() -> None:
    job = Job("unsubmitted")
    assert job.ready() is False
    assert job.update_status() == "init"


def test_full_command_quotes_each_part() -> None:
    job = Job("q")
    job.cmd = ["echo", "a b"]
    job.args = ["$HOME", 3]
    assert job.full_command == "echo 'a b' '$HOME' 3"


def _rich_job(tmp_path: Path) -> Job:
    job = Job("roundtrip")
    job.working_dir = tmp_path / "w"
    job.output_dir = tmp_path / "o"
    job.cmd = ["python3", "x.py"]
    job.args = ["--n", 3]
    job.input_files = [str(tmp_path / f"f{i}") for i in range(5)]
    job.input_sandbox_files = [tmp_path / "x.py"]
    job.output_patterns = ["*.json"]
    job.setup_cmds = ["export X=1"]
    job.backend_args = {"queue": "short", "extra_lines": ["a = b"]}
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(range_arguments, 0, 4), max_subjobs=10
    )
    job.split()
    return job


def test_job_dict_round_trip(tmp_path: Path) -> None:
    job = _rich_job(tmp_path)
    path = tmp_path / "job.json"
    job.dump_to_json(path)
    loaded = Job.from_json(path)
    assert loaded.job_dict == job.job_dict
    assert json.loads(path.read_text()) == job.job_dict
    assert set(job.job_dict) == {
        "name", "input_sandbox_files", "working_dir", "output_dir", "output_patterns",
        "cmd", "args", "input_files", "setup_cmds", "backend_args", "subjobs",
    }  # fmt: skip
    assert job.job_dict["subjobs"][2] == {"id": 2, "input_files": job.input_files, "args": [2]}
    assert loaded.subjobs[3].args == [3] and loaded.working_dir == job.working_dir


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"name": "x", "cmd": "echo"}, "cmd"),
        ({"name": "x", "subjobs": [{"id": -1}]}, "subjobs.0.id"),
        ({"name": "x", "subjobs": [{"id": 0}, {"id": 0}]}, "subjobs"),
        ({"name": "x", "bogus": 1}, "bogus"),
        ({"name": "x", "input_files": [1]}, "input_files.0"),
        ({"name": 5}, "name"),
        (["not", "a", "dict"], "name"),
    ],
)
def test_from_json_rejects_bad_documents(tmp_path: Path, doc: object, field: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SpecError) as err:
        Job.from_json(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)
    assert "\n" not in str(err.value)


def test_from_json_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        Job.from_json(tmp_path / "none.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SpecError, match="not valid JSON"):
        Job.from_json(tmp_path / "broken.json")


def test_subjob_of_relative_parent_dir(tmp_path: Path) -> None:
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        job = Job("rel")
        job.create_subjob(0)
        assert job.subjobs[0].working_dir == tmp_path / "0"
    finally:
        os.chdir(cwd)

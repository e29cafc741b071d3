"""HTCondor text in and out, on recorded samples (tests/backends/data/htcondor, see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobfleet import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    BackendError,
    Job,
    SpecError,
    range_arguments,
)
from jobfleet.backends.batch import ArrayChunk, NativeState
from jobfleet.backends.htcondor import HTCondor, parse_classads, parse_terse, state_from_classad
from jobfleet.status import JobStatus

DATA = Path(__file__).parent / "data" / "htcondor"
GOLDEN = Path(__file__).parent / "golden"


def sample(name: str) -> str:
    return (DATA / name).read_text()


def _scan(tmp_path: Path, n: int, **backend_args: object) -> Job:
    job = Job("scan")
    job.working_dir = tmp_path / "scan"
    job.cmd = ["python3", "run.py"]
    job.backend_args = dict(backend_args)
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    job.split()
    return job


def _golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("JOBFLEET_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_submit_output() -> None:
    assert parse_terse(sample("condor_submit_terse.out")) == ("123.0", 1)
    assert parse_terse("57.0 - 57.49\n") == ("57.0", 50)
    assert parse_terse(sample("condor_submit.out")) == ("5184660.0", 1)
    assert HTCondor().job_id_from_submit_output("57.0 - 57.49\n") == "57.0"
    with pytest.raises(BackendError, match="not a job id"):
        parse_terse("\nERROR: Failed to connect to local queue manager\n")


def test_condor_q_json() -> None:
    states = HTCondor().parse_status_output(sample("condor_q_json.out"))
    assert {nid: s.state for nid, s in states.items()} == {
        "5184659.0": "UNEXPANDED", "5184660.0": "IDLE", "5184661.0": "RUNNING",
        "5184662.0": "REMOVED", "5184663.0": "COMPLETED", "5184664.0": "HELD",
        "5184665.0": "TRANSFERRING_OUTPUT", "5184666.0": "UNKNOWN",
    }  # fmt: skip
    assert states["5184660.0"].status is JobStatus.submitted
    assert states["5184661.0"].status is JobStatus.running
    assert states["5184662.0"] == NativeState(JobStatus.failed, "REMOVED", reason="cancelled")
    assert states["5184664.0"].status is JobStatus.submitted  # held jobs keep waiting
    assert states["5184665.0"].status is JobStatus.running
    assert states["5184666.0"].status is JobStatus.submitted  # unknown: not a verdict
    assert HTCondor().parse_status_output(sample("condor_q_empty.out")) == {}


def test_condor_history_json() -> None:
    states = HTCondor().parse_history_output(sample("condor_history_json.out"))
    assert states["5184667.0"] == NativeState(JobStatus.completed, "COMPLETED", 0)
    assert states["5184668.0"] == NativeState(JobStatus.failed, "COMPLETED", 1)
    assert states["5184663.0"].exit_code == 0
    assert len(parse_classads(sample("condor_history_json.out"))) == 10


@pytest.mark.parametrize(
    ("ad", "status", "exit_code", "reason"),
    [
        ({"JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9}, "failed", 137, None),
        ({"JobStatus": 4, "ExitBySignal": False, "ExitCode": 3}, "failed", 3, None),
        ({"JobStatus": 3, "RemoveReason": "via condor_rm (by user alice)"}, "failed", None,
         "cancelled"),
        ({"JobStatus": 3, "RemoveReason": "The job attribute PeriodicRemove expression "
          "'JobStatus == 2' evaluated to TRUE"}, "failed", None, "timeout"),
        ({"JobStatus": 5, "HoldReason": "Input data are being spooled", "HoldReasonCode": 16},
         "submitted", None, "Input data are being spooled"),
        ({"JobStatus": 7}, "running", None, None),
    ],
)  # fmt: skip
def test_state_from_classad(
    ad: dict[str, object], status: str, exit_code: int | None, reason: str | None
) -> None:
    state = state_from_classad(ad)
    assert (state.status.value, state.exit_code, state.reason) == (status, exit_code, reason)


def test_garbage_is_an_error_not_an_empty_queue() -> None:
    with pytest.raises(BackendError, match="not JSON"):
        parse_classads("-- Failed to fetch ads from: <127.0.0.1:9618>")


def test_array_submit_file_matches_golden(tmp_path: Path) -> None:
    job = _scan(
        tmp_path, 3, cores=2, memory="1.5GB", walltime="01:30:00", queue="longlunch",
        account="belle", gpus=1, extra_lines=['requirements = (OpSysAndVer =?= "AlmaLinux9")'],
        extra_directives=["+Experiment = \"belle\""], request_disk="2 GB",
    )  # fmt: skip
    chunk = ArrayChunk(job, tuple(job.subjobs.values()), 0)
    text = HTCondor().render_array_script(chunk).replace(str(tmp_path), "/TMP")
    _golden("htcondor_array.sub", text)
    assert "queue subjob from (\n0\n1\n2\n)\n" in text


def test_single_job_submit_file_matches_golden(tmp_path: Path) -> None:
    job = Job("single job; $(rm -rf /)")
    job.working_dir = tmp_path / "single"
    job.cmd = ["echo", "a b"]
    sandbox = tmp_path / "analyse.py"
    sandbox.write_text("print(1)\n")
    job.input_sandbox_files = [sandbox]
    backend = HTCondor(backend_args={"transfer_files": True, "getenv": "true"})
    path = backend.submission_file(job)
    assert path == job.working_dir / "submit.sub" and (job.working_dir / "submit.sh").exists()
    text = path.read_text().replace(str(tmp_path), "/TMP")
    _golden("htcondor_single.sub", text)
    assert "batch_name = single_job____rm_-rf" in text  # sanitised, so no macro survives
    assert "transfer_input_files = submit.sh,__BACKEND_INPUT_FILES__.json,analyse.py" in text


def test_defaults_follow_caf_backends(tmp_path: Path) -> None:
    text = HTCondor().render_array_script(
        ArrayChunk(job := _scan(tmp_path, 1), tuple(job.subjobs.values()), 0)
    )
    for line in ("universe = vanilla", "getenv = false", "request_memory = 4 GB",
                 "should_transfer_files = YES", "when_to_transfer_output = ON_EXIT"):  # fmt: skip
        assert f"\n{line}\n" in text
    shared = HTCondor(backend_args={"transfer_files": False, "inherit_env": True})
    text = shared.render_array_script(ArrayChunk(job, tuple(job.subjobs.values()), 0))
    assert "\nshould_transfer_files = NO\n" in text and "\ngetenv = true\n" in text
    assert "transfer_input_files" not in text
    prefixed = HTCondor(backend_args={"path_prefix": "/mnt/submit"})
    text = prefixed.render_array_script(ArrayChunk(job, tuple(job.subjobs.values()), 0))
    assert f"\ninitialdir = /mnt/submit{job.working_dir}/$(subjob)\n" in text


def test_submit_command_tags_the_cluster(tmp_path: Path) -> None:
    argv = HTCondor().submit_command(Path("/x/htcondor_0-9.sub"), tag="abc123")
    assert argv == ["condor_submit", "-terse", "-append", '+JobfleetTag = "abc123"',
                    "/x/htcondor_0-9.sub"]  # fmt: skip


def test_ids_of_a_cluster(tmp_path: Path) -> None:
    job = _scan(tmp_path, 5)
    chunk = ArrayChunk(job, tuple(job.subjobs[i] for i in (1, 3, 4)), 0)
    assert HTCondor().array_task_ids("77.0", chunk) == ["77.0", "77.1", "77.2"]
    argv = HTCondor().status_command(["77.0", "77.2", "8.0"])
    assert argv[:2] == ["condor_q", "-json"] and argv[-2:] == ["8", "77"]
    assert HTCondor().history_command(["77.1"])[-1] == "77"  # type: ignore[index]


def test_tag_query() -> None:
    backend = HTCondor()
    out = '[\n{\n  "ClusterId": 9,\n  "JobfleetTag": "t1",\n  "ProcId": 1\n}\n,\n' \
          '{\n  "ClusterId": 9,\n  "JobfleetTag": "t1",\n  "ProcId": 0\n}\n]\n'  # fmt: skip
    assert backend.parse_tag_query_output(out, "t1") == "9.0"
    assert backend.parse_tag_query_output(out, "t2") is None
    assert backend.parse_tag_query_output("", "t1") is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"memory": "-2GB"}, "memory"),
        ({"request_memory": "lots"}, "request_memory"),
        ({"universe": "vanilla\nqueue 100"}, "universe"),
        ({"extra_lines": ["queue 5"]}, "extra_lines"),
        ({"extra_lines": ["a = 1\nb = 2"]}, "extra_lines"),
        ({"extra_lines": "request_cpus = 2"}, "extra_lines"),
        ({"nodes": 2}, "nodes"),
        ({"queue": "long lunch"}, "queue"),
    ],
)
def test_invalid_options_rejected_before_submission(
    tmp_path: Path, args: dict[str, object], field: str
) -> None:
    job = _scan(tmp_path, 2, **args)
    with pytest.raises(SpecError, match=f"'{field}'"):
        HTCondor().submit(job)
    assert not job.working_dir.exists()


def test_working_dir_with_a_macro_is_refused(tmp_path: Path) -> None:
    job = _scan(tmp_path, 1)
    job.working_dir = tmp_path / "$(Cluster)"
    with pytest.raises(SpecError, match="cannot go into an HTCondor submit file"):
        HTCondor().submit(job)


def test_hold_action_is_checked() -> None:
    with pytest.raises(ValueError, match="hold_action"):
        HTCondor(backend_args={"hold_action": "ignore"})

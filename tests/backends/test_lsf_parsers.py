"""LSF text in and out, on recorded samples (tests/backends/data/lsf, see its README)."""

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
from jobfleet.backends.batch import ArrayChunk
from jobfleet.backends.lsf import (
    LSF,
    parse_bjobs_json,
    parse_bsub_output,
    reason_from_exit_reason,
    state_from_record,
)
from jobfleet.status import JobStatus

DATA = Path(__file__).parent / "data" / "lsf"
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


def test_bsub_output() -> None:
    assert parse_bsub_output(sample("bsub_default_queue.out")) == "9148559"
    assert parse_bsub_output(sample("bsub_queue.out")) == "4838563"
    assert parse_bsub_output(sample("bsub_please_wait.out")) == "12345678"
    with pytest.raises(BackendError, match="not a job id"):
        parse_bsub_output("short: User cannot use the queue. Job not submitted.\n")


def test_bjobs_states_and_exit_codes() -> None:
    states = LSF().parse_status_output(sample("bjobs_json_exit_done.out"))
    assert {nid: s.status for nid, s in states.items()} == {
        "487641": JobStatus.failed, "487642": JobStatus.failed, "488155": JobStatus.failed,
        "491861": JobStatus.completed, "491864": JobStatus.completed,
        "491867": JobStatus.completed,
    }  # fmt: skip
    (done,) = LSF().parse_status_output(sample("bjobs_json_done_full.out")).values()
    assert (done.status, done.exit_code) == (JobStatus.completed, 0)  # DONE: EXIT_CODE is ""
    record = parse_bjobs_json(sample("bjobs_json_done_full.out"))[0]
    assert record["EXEC_CWD"] == "/home/otptest"  # LSF writes "\/home\/otptest"
    (odd,) = LSF().parse_status_output(sample("bjobs_json_exit_code.out")).values()
    assert odd.exit_code == 1


def test_killed_by_owner_and_held() -> None:
    (record,) = parse_bjobs_json(sample("bjobs_json_term_owner.out"))
    state = state_from_record(record)
    assert (state.status, state.reason, state.exit_code) == (JobStatus.failed, "cancelled", None)
    (held,) = parse_bjobs_json(sample("bjobs_json_psusp.out"))
    assert state_from_record(held).status is JobStatus.submitted  # suspended while pending


def test_unknown_ids_and_array_elements() -> None:
    # The ERROR record as caf.backends knew it (see the README); array elements by JOBINDEX.
    out = (
        '{\n  "COMMAND":"bjobs",\n  "JOBS":3,\n  "RECORDS":[\n'
        '    {\n      "JOBID":"7",\n      "JOBINDEX":"2",\n      "STAT":"RUN"\n    },\n'
        '    {\n      "JOBID":"8",\n      "JOBINDEX":"0",\n      "STAT":"PEND"\n    },\n'
        '    {\n      "JOBID":"9",\n      "ERROR":"Job <9> is not found"\n    }\n  ]\n}\n'
    )
    states = LSF().parse_status_output(out)
    assert set(states) == {"7[2]", "8"}
    assert states["7[2]"].status is JobStatus.running
    assert LSF().parse_active_count(out) == 2
    assert LSF().parse_status_output("") == {}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("TERM_OWNER: job killed by owner", "cancelled"),
        ("TERM_RUNLIMIT: job killed after reaching LSF run time limit", "timeout"),
        ("TERM_MEMLIMIT: job killed after reaching LSF memory usage limit", "out of memory"),
        ("", None),
        ("TERM_SOMETHING_NEW: ?", None),
    ],
)
def test_exit_reasons(text: str, reason: str | None) -> None:
    assert reason_from_exit_reason(text) == reason


def test_array_script_matches_golden(tmp_path: Path) -> None:
    job = _scan(
        tmp_path, 3, cores=2, memory="1.5GB", walltime="01:30:00", queue="short",
        account="belle", gpus=1, extra_directives=["-R 'select[type==X86_64]'"],
    )  # fmt: skip
    chunk = LSF()._chunks(job, list(job.subjobs.values()))[0]
    assert chunk.indices == [1, 2, 3] and chunk.offset == -1  # LSF counts from 1
    text = LSF().render_array_script(chunk).replace(str(tmp_path), "/TMP")
    _golden("lsf_array.sh", text)
    assert "#BSUB -J 'scan[1-3]'\n" in text and "LSB_JOBINDEX + -1" in text


def test_single_job_launcher_matches_golden(tmp_path: Path) -> None:
    job = Job("single job; $(rm -rf /)")
    job.working_dir = tmp_path / "single"
    job.cmd = ["echo", "a b"]
    job.backend_args = {"memory": 512, "walltime": 61}
    path = LSF().submission_file(job)
    assert path.name == "lsf_job.sh" and "#BSUB" not in (job.working_dir / "submit.sh").read_text()
    _golden("lsf_single.sh", path.read_text().replace(str(tmp_path), "/TMP"))


def test_submit_command(tmp_path: Path) -> None:
    job = _scan(tmp_path, 5, queue="short", extra_directives=["-R 'select[type==X86_64]'"])
    job.working_dir.mkdir(parents=True)
    backend = LSF(backend_args={"array_limit": 2})
    chunk = ArrayChunk(job, tuple(job.subjobs[i] for i in (0, 1, 2, 4)), -1)
    argv = backend.submit_command(Path("/x/array_0-4.sh"), tag="t1", array=chunk)
    assert argv[:5] == ["bsub", "-Jd", "jobfleet:t1", "-env", "none"]
    assert argv[-2:] == ["/bin/bash", "/x/array_0-4.sh"]
    assert argv[argv.index("-J") + 1] == "scan[1-3,5]%2"
    assert argv[argv.index("-q") + 1] == "short"
    assert argv[argv.index("-R") + 1] == "select[type==X86_64]"
    assert argv[argv.index("-o") + 1] == f"{job.working_dir}/lsf-logs/%J_%I.log"
    job.backend_args["inherit_env"] = True
    assert backend.submit_command(Path("/x"), tag="t", array=chunk)[3:5] == ["-env", "all"]


def test_ids_and_queries(tmp_path: Path) -> None:
    backend = LSF()
    job = _scan(tmp_path, 3)
    chunk = ArrayChunk(job, tuple(job.subjobs.values()), -1)
    assert backend.array_task_ids("55", chunk) == ["55[1]", "55[2]", "55[3]"]
    argv = backend.status_command(["55[1]", "9", "55[3]"])
    assert argv[:4] == ["bjobs", "-a", "-json", "-o"] and argv[-2:] == ["9", "55"]
    assert backend.max_array_size() == 1001
    out = (
        '{\n  "COMMAND":"bjobs",\n  "JOBS":1,\n  "RECORDS":[\n    {\n      "JOBID":"55",\n'
        '      "JOBINDEX":"1",\n      "JOB_DESCRIPTION":"jobfleet:t9"\n    }\n  ]\n}\n'
    )
    assert backend.parse_tag_query_output(out, "t9") == "55"
    assert backend.parse_tag_query_output(out, "t8") is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"memory": "-2GB"}, "memory"),
        ({"queue": "short\n#BSUB -x"}, "queue"),
        ({"nodes": 3}, "nodes"),
        ({"extra_directives": ["exclusive"]}, "extra_directives"),
        ({"extra_directives": ["-R 'unbalanced"]}, "extra_directives"),
    ],
)
def test_invalid_options_rejected_before_submission(
    tmp_path: Path, args: dict[str, object], field: str
) -> None:
    job = _scan(tmp_path, 2, **args)
    with pytest.raises(SpecError, match=f"'{field}'"):
        LSF().submit(job)
    assert not job.working_dir.exists()

"""DIRAC text in and out, on recorded real output (tests/backends/data/dirac, see its README)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, SpecError, range_arguments
from jobfleet.backends.batch import ArrayChunk
from jobfleet.backends.dirac import DISPATCHER, Dirac
from jobfleet.backends.dirac_jdl import (
    dirac_state,
    jdl_attribute,
    lfn_of,
    parse_get_output,
    parse_select_output,
    parse_status_lines,
    parse_submit_output,
)
from jobfleet.errors import BackendError
from jobfleet.status import JobStatus

DATA = Path(__file__).parent / "data" / "dirac"
GOLDEN = Path(__file__).parent / "golden"


def sample(name: str) -> str:
    return (DATA / name).read_text()


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("JOBFLEET_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_submit_output() -> None:
    assert parse_submit_output(sample("submit_single.out")) == ["11758"]
    assert parse_submit_output(sample("submit_cms_dirac9.out")) == ["9558"]
    assert parse_submit_output(sample("submit_loglevel_info.out")) == ["11"]  # after log lines
    assert parse_submit_output(sample("submit_parametric.out")) == [
        "1047", "1048", "1049", "1050", "1051",
    ]  # fmt: skip
    backend = Dirac()
    array_id = backend.job_id_from_submit_output(sample("submit_parametric.out"))
    assert array_id == "1047,1048,1049,1050,1051"
    # Format of dirac_wms_job_submit.py's error line (no public transcript, see README).
    with pytest.raises(BackendError, match="printed no job id"):
        parse_submit_output("ERROR job.jdl: Number of parametric jobs exceeds the limit of 20\n")


def test_status_lines_in_both_field_orders() -> None:
    old = parse_status_lines(sample("status_waiting_userguide.out"))
    assert old == {
        "11758": {"Status": "Waiting", "MinorStatus": "Pilot Agent Submission",
                  "Site": "DIRAC.CNAF.it"},
    }  # fmt: skip
    new = parse_status_lines(sample("status_done_cms_dirac9.out"))
    assert new["9558"]["Status"] == "Done"
    assert new["9558"]["MinorStatus"] == "Execution Complete"
    assert new["9558"]["ApplicationStatus"] == "Unknown"
    assert new["9558"]["Site"] == "LCG.UKI-SOUTHGRID-RALPP.uk"


@pytest.mark.parametrize(
    ("name", "job_id", "status"),
    [
        ("status_waiting_userguide.out", "11758", JobStatus.submitted),
        ("status_waiting_tutorial.out", "11", JobStatus.submitted),
        ("status_done_script_doc.out", "2", JobStatus.completed),
        ("status_done_cms_dirac9.out", "9558", JobStatus.completed),
        ("status_done_gasw.out", "121476332", JobStatus.completed),
        ("status_done_xenon_tutorial.out", "1", JobStatus.completed),
    ],
)
def test_status_samples(name: str, job_id: str, status: JobStatus) -> None:
    states = Dirac().parse_status_output(sample(name))
    assert list(states) == [job_id]
    assert states[job_id].status is status and states[job_id].reason is None


def test_one_status_output_for_many_jobs() -> None:
    # The command prints one line per job it knows; unknown ids are simply absent.
    text = "".join(sample(n) for n in ("status_waiting_userguide.out", "status_done_gasw.out"))
    states = Dirac().parse_status_output(text)
    assert set(states) == {"11758", "121476332"}
    assert Dirac().parse_status_output("") == {}


def _table(name: str, status_col: str, minor_col: str) -> list[tuple[str, str]]:
    """(Status, MinorStatus) pairs of a fixed-width table, cut at its header's columns."""
    lines = sample(name).splitlines()
    header = lines[0]
    s, m = header.index(status_col), header.index(minor_col)
    end = header.index(" ", m + len(minor_col)) if m < len(header) else None
    while end is not None and header[end] == " ":
        end += 1
    return [(line[s:m].strip(), line[m:end].strip()) for line in lines[2:]]


def test_real_state_pairs() -> None:
    pairs = _table("dstat_cms_dirac9.out", "Status", "MinorStatus")
    states = {pair: dirac_state(*pair) for pair in pairs}
    done = states[("Done", "Execution Complete")]
    assert done.status is JobStatus.completed and done.reason is None
    app = states[("Failed", "Application Finished With Errors")]
    assert app.status is JobStatus.failed
    assert app.reason is None  # described by the payload's exit code once it is fetched
    upload = states[("Failed", "Output Data Uploaded")]
    assert upload.status is JobStatus.failed and upload.reason == "Output Data Uploaded"


def test_a_successful_jobs_history_maps_forward() -> None:
    pairs = _table("logging_info_cms_dirac9.out", "Status", "MinorStatus")
    ranks = [dirac_state(*pair).status.rank for pair in pairs]
    assert ranks == sorted(ranks)  # never backwards
    assert dirac_state(*pairs[0]).status is JobStatus.submitted  # Received
    assert dirac_state(*pairs[8]).status is JobStatus.running  # Running / Job Initialization
    assert dirac_state(*pairs[11]).status is JobStatus.running  # Completing
    assert dirac_state(*pairs[-1]).status is JobStatus.completed  # Done


@pytest.mark.parametrize(
    ("status", "minor", "expected", "reason"),
    [
        ("Submitting", "Bulk transaction confirmation", "submitted", None),
        ("Received", "Job accepted", "submitted", None),
        ("Checking", "JobSanity", "submitted", None),
        ("Staging", "Request to be sent", "submitted", None),
        ("Matched", "Assigned", "submitted", None),
        ("Stalled", "Watchdog identified this job as stalled", "running", None),
        ("Completed", "Pending Requests", "running", None),
        ("Killed", "Marked for termination", "failed", "cancelled"),
        ("Killed", "Received Kill signal", "failed", "killed (Received Kill signal)"),
        ("Deleted", "Checking accounting", "failed", "deleted"),
        ("Failed", "Job has exceeded maximum wall clock time", "failed", "timeout"),
        ("Failed", "Job has reached the CPU limit of the queue", "failed", "timeout"),
        ("Failed", "Job stalled: pilot not running", "failed", "Job stalled: pilot not running"),
        ("Failed", "Input Data Not Available", "failed", "Input Data Not Available"),
    ],
)
def test_state_map(status: str, minor: str, expected: str, reason: str | None) -> None:
    line = f"JobID=7 ApplicationStatus=Unknown; MinorStatus={minor}; Status={status}; Site=ANY;"
    state = Dirac().parse_status_output(line)["7"]
    assert (state.status.value, state.reason) == (expected, reason)
    assert state.requeued is False
    assert dirac_state("Rescheduled", "Job Rescheduled").requeued


def test_get_output_lines() -> None:
    for name in ("get_output_cms_dirac9.out", "get_output_xenon_tutorial.out",
                 "get_output_userguide.out"):  # fmt: skip
        assert parse_get_output(sample(name)) == {}
    # Format of dirac_wms_job_get_output.py's error lines (see README).
    said = (
        "Job output sandbox retrieved in out/12/\n"
        "ERROR 13: No Output sandbox found for job 13. Possible causes are: the job does not"
        " exist, no sandbox was registered or you do not have permission to access it.\n"
    )
    assert list(parse_get_output(said)) == ["13"]
    assert parse_get_output(said)["13"].startswith("No Output sandbox found for job 13.")


def test_select_jobs_output() -> None:
    # Format of dirac_wms_select_jobs.py (see README).
    said = "==> Selected 3 jobs with conditions: JobGroup = jobfleet-ab12, Date = Today\n12,10,11\n"
    assert parse_select_output(said) == ["10", "11", "12"]
    assert parse_select_output("No jobs were selected with conditions: JobGroup = x\n") == []
    assert Dirac().parse_tag_query_output(said, "ab12") == "10,11,12"


def test_lfns_and_jdl_values() -> None:
    assert lfn_of("LFN:/belle/user/a.root") == "LFN:/belle/user/a.root"
    assert lfn_of("LFN:///belle/user/a.root") == "LFN:/belle/user/a.root"
    assert lfn_of("lfn://belle/user/a.root") == "LFN:/belle/user/a.root"
    assert lfn_of("/data/a.root") is None and lfn_of("root://host//a.root") is None
    assert jdl_attribute("Priority = 3") == "Priority = 3;"
    for bad in ("Priority = 3; Site = X", "Nope", "A = %n", "A = [ B = 1 ]"):
        with pytest.raises(SpecError, match="extra_directives"):
            jdl_attribute(bad)


def _scan(tmp_path: Path, n: int, **backend_args: object) -> Job:
    job = Job("scan")
    job.working_dir = tmp_path / "scan"
    job.cmd = ["python3", "analyse.py"]
    (tmp_path / "analyse.py").write_text("print('hi')\n")
    job.input_sandbox_files = [tmp_path / "analyse.py"]
    job.output_patterns = ["*.json"]
    job.backend_args = dict(backend_args)
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    job.split()
    return job


def test_parametric_jdl_matches_golden(tmp_path: Path) -> None:
    job = _scan(
        tmp_path, 3, cores=4, walltime="02:00:00", site=["LCG.CERN.cern", "LCG.KEK.jp"],
        banned_sites="LCG.RAL.uk", tags=["8GBMemory"], platform="x86_64-el9",
        extra_directives=["Priority = 3"],
    )  # fmt: skip
    for sub in job.subjobs.values():
        sub.input_files = [f"LFN:/belle/user/scan/in{sub.id}.root"]
    job.subjobs[2].input_files = []  # a subjob without grid inputs gets an empty list
    text = Dirac().render_array_script(ArrayChunk(job, tuple(job.subjobs.values()), 0))
    check_golden("dirac_parametric.jdl", text.replace(str(tmp_path), "/TMP"))


def test_single_jdl_matches_golden(tmp_path: Path) -> None:
    job = Job("single job; $(rm -rf /)")
    job.working_dir = tmp_path / "single"
    job.cmd = ["echo", "a b"]
    job.input_files = ["LFN:/belle/data/run1.root", "lfn:/belle/data/run2.root"]
    job.backend_args = {"cpu_time": 86400, "job_name": "my job"}
    jdl = Dirac().submission_file(job)
    assert jdl == job.working_dir / "dirac_job.jdl"
    check_golden("dirac_single.jdl", jdl.read_text().replace(str(tmp_path), "/TMP"))


def test_bundle_holds_each_units_own_files(tmp_path: Path) -> None:
    job = _scan(tmp_path, 2)
    data = tmp_path / "f.txt"
    data.write_text("x")
    job.subjobs[1].input_files = [str(data), "LFN:/vo/a.root", "root://eos//b.root"]
    backend = Dirac()
    chunk = ArrayChunk(job, tuple(job.subjobs.values()), 0)
    for unit in chunk.units:
        backend.prepare(unit)
    jdl = job.working_dir / "dirac_0-1.jdl"
    jdl.write_text(backend.render_array_script(chunk))
    argv = backend.submit_command(jdl, tag="0123abcd", array=chunk)
    assert argv == ["dirac-wms-job-submit", str(jdl)]
    assert jdl.read_text().endswith('JobGroup = "jobfleet-0123abcd";\n')
    assert (job.working_dir / DISPATCHER).stat().st_mode & 0o111
    with tarfile.open(jdl.with_suffix(".tar.gz")) as tar:
        names = sorted(tar.getnames())
        listed = tar.extractfile("1/__BACKEND_INPUT_FILES__.json").read()  # type: ignore[union-attr]
    assert names == [
        "0/__BACKEND_INPUT_FILES__.json", "0/submit.sh",
        "1/__BACKEND_INPUT_FILES__.json", "1/jobfleet-inputs/f.txt", "1/submit.sh",
    ]  # fmt: skip
    assert listed == b'["jobfleet-inputs/f.txt", "LFN:/vo/a.root", "root://eos//b.root"]'


def test_what_a_jdl_cannot_hold_is_refused(tmp_path: Path) -> None:
    backend = Dirac()
    job = _scan(tmp_path, 2, site="LCG.CERN.cern; Tags = {x}")
    with pytest.raises(SpecError, match="field 'site'"):
        backend.check_job(job)
    job = _scan(tmp_path, 2)
    spaced = tmp_path / "my file.py"
    spaced.write_text("")
    job.input_sandbox_files = [spaced]
    with pytest.raises(SpecError, match="input_sandbox_files"):
        backend.check_job(job)
    job.input_sandbox_files = [tmp_path / "analyse.py", tmp_path / "sub" / "analyse.py"]
    with pytest.raises(SpecError, match="used twice"):
        backend.check_job(job)
    job = _scan(tmp_path, 2, cpu_time="long")
    with pytest.raises(SpecError, match="cpu_time"):
        backend.check_job(job)
    job = _scan(tmp_path, 2)
    job.subjobs[0].input_files = ["LFN:/vo//double.root"]
    with pytest.raises(SpecError, match="input_files"):
        backend.check_job(job)
    with pytest.raises(ValueError, match="max_parametric_jobs"):
        Dirac(backend_args={"max_parametric_jobs": 0})


def test_chunks_count_subjobs_not_index_ranges(tmp_path: Path) -> None:
    job = _scan(tmp_path, 300)
    scattered = [job.subjobs[i] for i in (7, 150, 299)]
    chunks = Dirac()._chunks(job, scattered)  # e.g. failed subjobs submitted again
    assert [c.label for c in chunks] == ["7-299"]
    narrow = Dirac(backend_args={"max_parametric_jobs": 20})
    chunks = narrow._chunks(job, list(job.subjobs.values()))
    assert [len(c.units) for c in chunks] == [20] * 15


def test_resources_without_a_jdl_attribute_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = _scan(tmp_path, 2, memory="2GB", queue="long", cores=2)
    backend = Dirac()
    backend.check_job(job)
    warned = [r.getMessage() for r in caplog.records if r.name == "jobfleet.backends.dirac"]
    assert warned == [
        "scan: memory_mb has no DIRAC JDL attribute; ignored",
        "scan: queue has no DIRAC JDL attribute; ignored",
    ]
    assert backend.attributes(job) == ["NumberOfProcessors = 2;"]

"""Slurm text in and out, on recorded real output (tests/backends/data/slurm, see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, SpecError, range_arguments
from jobfleet.backends.batch import ArrayChunk, compress_indices
from jobfleet.backends.slurm import (
    Slurm,
    expand_array_id,
    format_walltime,
    parse_config,
    parse_exit_code,
    parse_raw_wait_status,
)
from jobfleet.status import JobStatus

DATA = Path(__file__).parent / "data" / "slurm"
GOLDEN = Path(__file__).parent / "golden"


def sample(name: str) -> str:
    return (DATA / name).read_text()


class OfflineSlurm(Slurm):
    """The real backend with the cluster facts given, so text can be rendered without a cluster."""

    def config(self) -> dict[str, str]:
        return parse_config(sample("scontrol_show_config.out"))


def test_config_gives_array_size_and_accounting() -> None:
    backend = OfflineSlurm()
    assert backend.max_array_size() == 1001
    assert backend.has_accounting()


def test_sbatch_output() -> None:
    backend = OfflineSlurm()
    assert backend.job_id_from_submit_output(sample("sbatch_parsable_plain.out")) == "3"
    assert backend.job_id_from_submit_output(sample("sbatch_parsable_array.out")) == "4"
    assert backend.job_id_from_submit_output("812;cluster2\n") == "812"
    with pytest.raises(Exception, match="not a job id"):
        backend.job_id_from_submit_output(sample("sbatch_error_invalid_partition.err"))


def test_squeue_finished_jobs() -> None:
    states = OfflineSlurm().parse_status_output(sample("squeue_Format_finished.out"))
    assert states["24"].status is JobStatus.failed and states["24"].exit_code == 3
    assert states["24"].reason is None  # described by its exit code
    assert states["25"].status is JobStatus.failed and states["25"].reason == "cancelled"
    assert states["25"].exit_code == 143
    assert states["2"].reason == "timeout"
    assert states["4_9"].status is JobStatus.completed and states["4_9"].exit_code == 0
    assert all(f"26_{i}" in states for i in range(21))


def test_squeue_pending_and_running_array_tasks() -> None:
    states = OfflineSlurm().parse_status_output(sample("squeue_Format_pending_running.out"))
    assert states["26_0"].status is JobStatus.running
    assert states["26_20"].status is JobStatus.submitted
    assert states["5_9"].status is JobStatus.submitted
    assert states["27"].status is JobStatus.running


def test_sacct_history() -> None:
    states = OfflineSlurm().parse_history_output(sample("sacct_finished_with_steps.out"))
    assert "2.batch" not in states and "4_0.batch" not in states
    assert states["24"].status is JobStatus.failed and states["24"].exit_code == 3
    assert states["25"].reason == "cancelled"  # "CANCELLED by 0"
    assert states["2"].reason == "timeout"
    assert states["4_3"].status is JobStatus.completed


@pytest.mark.parametrize(
    ("word", "status", "reason"),
    [
        ("PENDING", "submitted", None),
        ("CONFIGURING", "submitted", None),
        ("REQUEUED", "submitted", None),
        ("RUNNING", "running", None),
        ("COMPLETING", "running", None),
        ("SUSPENDED", "running", None),
        ("COMPLETED", "completed", None),
        ("FAILED", "failed", None),
        ("TIMEOUT", "failed", "timeout"),
        ("OUT_OF_MEMORY", "failed", "out of memory"),
        ("NODE_FAIL", "failed", "node failure"),
        ("BOOT_FAIL", "failed", "node failure (boot)"),
        ("DEADLINE", "failed", "deadline reached"),
        ("CANCELLED", "failed", "cancelled"),
    ],
)
def test_state_map(word: str, status: str, reason: str | None) -> None:
    line = f"7_1|9|7|1|XX|{word}|None|0"
    state = OfflineSlurm().parse_status_output(line)["7_1"]
    assert (state.status.value, state.reason) == (status, reason)
    assert state.requeued == (word == "REQUEUED")


def test_exit_code_decoding() -> None:
    assert parse_raw_wait_status("768") == 3
    assert parse_raw_wait_status("15") == 143
    assert parse_raw_wait_status("0") == 0
    assert parse_raw_wait_status("N/A") is None
    assert parse_exit_code("3:0") == 3
    assert parse_exit_code("0:15") == 143
    assert parse_exit_code("") is None


def test_walltime_and_index_formats() -> None:
    assert format_walltime(3600) == "0-01:00:00"
    assert format_walltime(90061) == "1-01:01:01"
    assert compress_indices([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert compress_indices([4]) == "4"


def _scan(tmp_path: Path, n: int, **backend_args: object) -> tuple[Job, Slurm]:
    job = Job("scan")
    job.working_dir = tmp_path / "scan"
    job.cmd = ["python3", "run.py"]
    job.backend_args = dict(backend_args)
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    job.split()
    return job, OfflineSlurm()


def test_array_script_and_directives_match_golden(tmp_path: Path) -> None:
    job, backend = _scan(
        tmp_path, 3, cores=2, memory="1.5GB", walltime="01:30:00", queue="short",
        account="belle", gpus=1, nodes=1, extra_directives=["--constraint=avx2"],
    )  # fmt: skip
    chunk = ArrayChunk(job, tuple(job.subjobs.values()), 0)
    text = backend.render_array_script(chunk).replace(str(tmp_path), "/TMP")
    golden = GOLDEN / "slurm_array.sh"
    if os.environ.get("JOBFLEET_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_single_job_script_matches_golden(tmp_path: Path) -> None:
    job = Job("single job; $(rm -rf /)")
    job.working_dir = tmp_path
    job.cmd = ["echo", "a b"]
    job.backend_args = {"memory": 512, "walltime": 61}
    text = OfflineSlurm().render_script(job)
    golden = GOLDEN / "slurm_single.sh"
    if os.environ.get("JOBFLEET_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert "#SBATCH --job-name=single_job____rm_-rf" in text


def test_chunks_respect_max_array_size(tmp_path: Path) -> None:
    job, backend = _scan(tmp_path, 2500)
    chunks = backend._chunks(job, list(job.subjobs.values()))
    assert [len(c.units) for c in chunks] == [1001, 1001, 498]
    assert [c.offset for c in chunks] == [0, 1001, 2002]
    assert all(max(c.indices) < 1001 for c in chunks)
    backend.global_job_limit = 400
    assert max(len(c.units) for c in backend._chunks(job, list(job.subjobs.values()))) == 400


def test_submit_command_for_array(tmp_path: Path) -> None:
    job, backend = _scan(tmp_path, 5)
    job.working_dir.mkdir(parents=True)
    subs = [job.subjobs[i] for i in (0, 1, 2, 4)]
    backend.backend_args["array_limit"] = 2
    argv = backend.submit_command(Path("/x.sh"), tag="t1", array=ArrayChunk(job, tuple(subs), 0))
    assert argv[0] == "sbatch" and "--array=0-2,4%2" in argv and argv[-1] == "/x.sh"
    assert "--comment=jobfleet:t1" in argv


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"memory": "-2GB"}, "memory"),
        ({"walltime": "abc"}, "walltime"),
        ({"cores": 0}, "cores"),
        ({"gpus": -1}, "gpus"),
        ({"queue": "short\n#SBATCH --x"}, "queue"),
        ({"extra_directives": ["--a\n--b"]}, "extra_directives"),
        ({"extra_directives": "--a"}, "extra_directives"),
    ],
)
def test_invalid_resources_rejected_before_submission(
    tmp_path: Path, args: dict[str, object], field: str
) -> None:
    job, backend = _scan(tmp_path, 2, **args)
    with pytest.raises(SpecError, match=f"'{field}'"):
        backend.submit(job)
    assert not job.working_dir.exists()


def test_tag_query() -> None:
    out = "41|jobfleet:aaa\n42|jobfleet:bbb\n42|jobfleet:bbb\n"
    assert OfflineSlurm().parse_tag_query_output(out, "bbb") == "42"
    assert OfflineSlurm().parse_tag_query_output(out, "ccc") is None


def test_tag_history_finds_a_submission_by_its_submit_line() -> None:
    backend = OfflineSlurm()
    argv = backend.tag_history_command("feedc0de00000001")
    assert argv is not None and argv[0] == "sacct" and "--format=JobID,SubmitLine" in argv
    out = sample("sacct_submit_lines.out")
    assert backend.parse_tag_history_output(out, "feedc0de00000001") == "122674"  # the array
    assert backend.parse_tag_history_output(out, "feedc0de00000002") == "122675"
    assert backend.parse_tag_history_output(out, "697861e60f61406a") == "122669"
    assert backend.parse_tag_history_output(out, "feedc0de0000000") is None  # a prefix only


def test_no_tag_history_without_accounting_or_before_submit_lines() -> None:
    class NoAccounting(OfflineSlurm):
        def config(self) -> dict[str, str]:
            return {**super().config(), "AccountingStorageType": "accounting_storage/none"}

    class Old(OfflineSlurm):
        def config(self) -> dict[str, str]:
            return {**super().config(), "SLURM_VERSION": "20.11.9"}

    assert NoAccounting().tag_history_command("x") is None
    assert Old().tag_history_command("x") is None


def test_chunks_for_a_scheduler_counting_from_one(tmp_path: Path) -> None:
    class OneBased(OfflineSlurm):
        array_index_base = 1

    job, _ = _scan(tmp_path, 2500)
    chunks = OneBased()._chunks(job, list(job.subjobs.values()))
    assert [len(c.units) for c in chunks] == [1000, 1000, 500]
    assert all(min(c.indices) >= 1 and max(c.indices) <= 1000 for c in chunks)
    assert [c.units[0].id - c.indices[0] for c in chunks] == [-1, 999, 1999]


def test_retry_scale_gives_a_timed_out_subjob_more_walltime(tmp_path: Path) -> None:
    job, backend = _scan(tmp_path, 3, walltime="00:10:00", memory="1GB")
    backend.retry_scale = {"walltime": 2.0, "memory": 1.5}
    timed_out, oom, failed = job.subjobs[0], job.subjobs[1], job.subjobs[2]
    backend._finish(timed_out, None, "timeout")
    backend._finish(oom, None, "out of memory")
    backend._finish(failed, 3)
    assert timed_out.resource_scale == {"walltime": 2.0}
    assert oom.resource_scale == {"memory": 1.5}
    assert failed.resource_scale == {}

    def directives(unit: Job) -> list[str]:
        return backend.directives(job, array=ArrayChunk(job, (unit,), 0))  # type: ignore[arg-type]

    assert "#SBATCH --time=0-00:20:00" in directives(timed_out)
    assert "#SBATCH --mem=1536M" in directives(oom)
    assert "#SBATCH --time=0-00:10:00" in directives(failed)
    backend._finish(timed_out, None, "timeout")  # no effect: it already ended
    timed_out.status = "init"
    backend._finish(timed_out, None, "timeout")  # a second timeout doubles again
    assert timed_out.resource_scale == {"walltime": 4.0}


def test_pending_task_ranges_are_expanded() -> None:
    # The collapsed ids as squeue prints them without --array
    # (see squeue_noarray_pending_running.out: 5_[8-9%2], 26_[2-20%2]).
    assert expand_array_id("5_[8-9%2]") == ["5_8", "5_9"]
    assert expand_array_id("123_[4-6,9]") == ["123_4", "123_5", "123_6", "123_9"]
    assert expand_array_id("123_7") == ["123_7"]
    line = "26_[2-20%2]|26|26|2-20%2|PD|PENDING|JobArrayTaskLimit|0"
    states = OfflineSlurm().parse_status_output(line)
    assert sorted(states, key=lambda i: int(i.split("_")[1])) == [f"26_{i}" for i in range(2, 21)]
    assert {s.status for s in states.values()} == {JobStatus.submitted}

"""Grid Engine text in and out, on recorded real output (tests/backends/data/sge, see README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, SpecError, range_arguments
from jobfleet.backends.batch import ArrayChunk
from jobfleet.backends.sge import (
    GridEngine,
    expand_task_ranges,
    format_hms,
    parse_qacct,
    parse_qconf,
    sge_state,
)
from jobfleet.commands import CommandResult
from jobfleet.errors import CommandError
from jobfleet.status import JobStatus

DATA = Path(__file__).parent / "data" / "sge"
GOLDEN = Path(__file__).parent / "golden"


def sample(name: str) -> str:
    return (DATA / name).read_text()


class OfflineGE(GridEngine):
    """The real backend with the cell's configuration given, so no cell is needed."""

    def config(self) -> dict[str, str]:
        return parse_qconf(sample("qconf_sconf_global.out"))


def test_configuration_gives_the_array_limit() -> None:
    assert parse_qconf(sample("qconf_sconf_global.out"))["max_aj_tasks"] == "75000"
    assert OfflineGE().max_array_size() == 75001  # indices 1..75000
    assert OfflineGE(backend_args={"max_array_size": 11}).max_array_size() == 11
    reporting = parse_qconf(sample("qconf_sconf_global.out"))["reporting_params"]
    assert "flush_time=00:00:01" in reporting and "sharelog" in reporting  # continuation joined


def test_qsub_terse_output() -> None:
    backend = OfflineGE()
    assert backend.job_id_from_submit_output(sample("qsub_terse_plain.out")) == "2"
    assert backend.job_id_from_submit_output(sample("qsub_terse_array.out")) == "3"
    assert backend.job_id_from_submit_output(sample("qsub_terse_array_step.out")) == "4"
    with pytest.raises(Exception, match="not a job id"):
        backend.job_id_from_submit_output(sample("qsub_plain_noterse.out"))
    assert backend.array_task_id("3", 7) == "3.7"


def test_qstat_xml_running_and_pending_tasks() -> None:
    states = OfflineGE().parse_status_output(sample("qstat_xml_mixed.out"))
    assert {f"10.{t}" for t in range(1, 21)} <= set(states)  # 8 running + "9-20:1" pending
    assert states["10.1"].status is JobStatus.running
    assert states["10.9"].status is JobStatus.submitted and states["10.20"].state == "qw"
    assert states["11"].status is JobStatus.submitted and states["11"].state == "hqw"
    assert states["13"].status is JobStatus.submitted
    assert states == OfflineGE().parse_status_output(sample("qstat_xml_mixed_gd.out"))


def test_qstat_xml_error_held_suspended_and_deleting() -> None:
    states = OfflineGE().parse_status_output(sample("qstat_xml_eqw_held_suspended.out"))
    assert states["12"].status is JobStatus.failed and states["12"].reason == "error state (Eqw)"
    assert states["11"].status is JobStatus.submitted
    assert states["13"].status is JobStatus.running and states["13"].state == "s"
    deleting = OfflineGE().parse_status_output(sample("qstat_xml_deleting_running.out"))
    assert deleting["10.12"].state == "dr" and deleting["10.12"].status is JobStatus.running
    assert OfflineGE().parse_status_output(sample("qstat_xml_empty.out")) == {}


def test_qstat_xml_task_list_with_gaps() -> None:
    states = OfflineGE().parse_status_output(sample("qstat_xml_held_array_with_gaps.out"))
    assert sorted(states, key=lambda k: int(k.split(".")[1])) == [
        f"24.{t}" for t in (1, 3, 4, 6, 7, 9, 10)
    ]
    assert expand_task_ranges("9-20:1") == list(range(9, 21))
    assert expand_task_ranges("1-10:2") == [1, 3, 5, 7, 9]
    assert expand_task_ranges("2,5-6:1") == [2, 5, 6]


@pytest.mark.parametrize(
    ("word", "status", "requeued"),
    [
        ("qw", "submitted", False), ("hqw", "submitted", False), ("hRwq", "submitted", True),
        ("r", "running", False), ("t", "running", False), ("Rr", "running", True),
        ("s", "running", False), ("S", "running", False), ("T", "running", False),
        ("dr", "running", False), ("Eqw", "failed", False), ("Ehqw", "failed", False),
    ],
)  # fmt: skip
def test_state_letters(word: str, status: str, requeued: bool) -> None:
    state = sge_state(word)
    assert (state.status.value, state.requeued) == (status, requeued)


def test_qacct_exit_codes_and_failures() -> None:
    exit3 = parse_qacct(sample("qacct_j_exit3.out"))["20"]
    assert (exit3.status, exit3.exit_code, exit3.reason) == (JobStatus.failed, 3, None)
    codes = parse_qacct(sample("qacct_j_array_exit_codes.out"))
    assert {k: v.exit_code for k, v in codes.items()} == {"22.1": 0, "22.2": 1, "22.3": 2}
    assert codes["22.1"].status is JobStatus.completed
    h_rt = parse_qacct(sample("qacct_j_h_rt_exceeded.out"))["15"]
    assert (h_rt.exit_code, h_rt.reason) == (137, "timeout")  # failed 37, category -l h_rt=3
    killed = parse_qacct(sample("qacct_j_killed_sigkill.out"))["23"]
    assert (killed.exit_code, killed.reason) == (137, None)  # failed 100: told by the signal
    opening = parse_qacct(sample("qacct_j_output_file_error.out"))["12"]
    assert opening.status is JobStatus.failed and opening.reason == "could not open its output file"
    memory = parse_qacct(sample("qacct_j_h_vmem_memoryerror.out"))["21"]
    assert (memory.exit_code, memory.reason) == (1, None)  # the program saw MemoryError itself


def test_qacct_array_with_deleted_tasks_and_unknown_ids() -> None:
    states = parse_qacct(sample("qacct_j_array_tasks_deleted.out"))
    assert states["10.1"].status is JobStatus.completed
    assert states["10.9"].exit_code == 137 and states["10.9"].status is JobStatus.failed
    assert "10.17" not in states  # deleted while pending: never accounted
    assert parse_qacct(sample("qacct_j_unknown.out")) == {}
    assert OfflineGE.unknown_ids_error is not None
    assert OfflineGE.unknown_ids_error.search(sample("qacct_j_unknown.err"))
    assert OfflineGE.unknown_ids_error.search(sample("qacct_j_deleted_before_running.err"))


def test_history_asks_about_the_job_most_units_belong_to() -> None:
    backend = OfflineGE()
    assert backend.history_command(["7.1", "9.1", "9.2", "12"]) == ["qacct", "-j", "9"]
    assert backend.history_command(["12", "7.3"]) == ["qacct", "-j", "7"]
    assert OfflineGE(backend_args={"accounting": False}).history_command(["7.1"]) is None


def test_tag_is_found_in_job_contexts() -> None:
    backend = OfflineGE()
    out = sample("qstat_j_all_context.out")
    assert backend.parse_tag_query_output(out, "tag123abc") == "25"
    assert backend.parse_tag_query_output(out, "other") is None


def test_status_and_count_commands() -> None:
    backend = OfflineGE(backend_args={"user": "alice"})
    assert backend.status_command(["3.1", "4"]) == ["qstat", "-xml", "-u", "alice"]
    assert backend.parse_active_count(sample("qstat_xml_mixed_gd.out")) == 23
    assert backend.cancel_command(["3.1", "4"]) == ["qdel", "3.1", "4"]


def test_qdel_of_finished_ids_does_not_fail_the_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    import jobfleet.backends.batch as batch

    def fake_run(argv: list[str], **kwargs: object) -> CommandResult:
        said = {
            "qdel": (sample("qdel_finished_and_running.out"), "", 1),
            "qstat": ("", sample("qstat_j_all_none.err"), 1),
            "qacct": ("", sample("qacct_j_unknown.err"), 1),
        }[argv[0]]
        raise CommandError(argv, said[2], said[0], said[1])

    monkeypatch.setattr(batch, "run_command", fake_run)
    backend = OfflineGE()
    assert backend.run(["qdel", "20", "5"]).returncode == 1  # tolerated: 5 was deleted
    assert backend.run(["qstat", "-j", "*"]).stdout == ""  # no job at all: no tag either
    with pytest.raises(CommandError):
        backend.run(["qacct", "-j", "7"])  # unknown ids are the poll's business


def test_qdel_of_unknown_ids_only_is_tolerated_but_other_errors_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jobfleet.backends.batch as batch

    answers = iter([(sample("qdel_unknown.out"), 1), ("denied: permission denied", 1)])

    def fake_run(argv: list[str], **kwargs: object) -> CommandResult:
        out, code = next(answers)
        raise CommandError(argv, code, out, "")

    monkeypatch.setattr(batch, "run_command", fake_run)
    OfflineGE().run(["qdel", "999999"])
    with pytest.raises(CommandError):
        OfflineGE().run(["qdel", "5"])


def test_walltime_format() -> None:
    assert format_hms(3) == "0:00:03"
    assert format_hms(90061) == "25:01:01"


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


def test_array_script_and_directives_match_golden(tmp_path: Path) -> None:
    job = _scan(
        tmp_path, 3, cores=2, memory="1.5GB", walltime="01:30:00", queue="all.q",
        account="jobfleet", gpus=1, extra_directives=["-l arch=lx-amd64"],
    )  # fmt: skip
    chunk = ArrayChunk(job, tuple(job.subjobs.values()), -1)
    text = OfflineGE().render_array_script(chunk).replace(str(tmp_path), "/TMP")
    _golden("sge_array.sh", text)
    assert "h_vmem=768M" in text  # 1536 MB over 2 slots: h_vmem is per slot


def test_single_job_script_matches_golden(tmp_path: Path) -> None:
    job = Job("single job; $(rm -rf /)")
    job.working_dir = tmp_path
    job.cmd = ["echo", "a b"]
    job.backend_args = {"memory": 512, "walltime": 61}
    _golden("sge_single.sh", OfflineGE().render_script(job))


def test_submit_arguments(tmp_path: Path) -> None:
    job = _scan(tmp_path, 5)
    job.working_dir.mkdir(parents=True)
    backend = OfflineGE()
    subs = list(job.subjobs.values())
    chunk = ArrayChunk(job, tuple(subs), -1)
    argv = backend.submit_command(Path("/s.sh"), tag="t1", array=chunk)
    wd = str(job.working_dir)
    assert argv == ["qsub", "-terse", "-ac", "jobfleet=t1", "-A", "jobfleet-t1", "-t", "1-5",
                    "-wd", wd,
                    "-o", f"{wd}/sge-logs/", "-e", f"{wd}/sge-logs/", "/s.sh"]  # fmt: skip
    single = backend.submit_command(Path("/w.sh"), tag="t2", unit=subs[0])
    assert single[-7:] == ["-wd", str(subs[0].working_dir), "-o",
                           f"{subs[0].working_dir}/stdout", "-e",
                           f"{subs[0].working_dir}/stderr", "/w.sh"]  # fmt: skip


def test_gaps_split_arrays_because_qsub_takes_one_range(tmp_path: Path) -> None:
    job = _scan(tmp_path, 8)
    subs = [job.subjobs[i] for i in (0, 1, 2, 5, 7)]
    chunks = OfflineGE()._chunks(job, subs)
    assert [c.indices for c in chunks] == [[1, 2, 3], [6], [8]]
    small = OfflineGE(backend_args={"max_array_size": 4})._chunks(job, list(job.subjobs.values()))
    assert [(c.indices, c.offset) for c in small] == [([1, 2, 3], -1), ([1, 2, 3], 2), ([1, 2], 5)]


def test_resources_that_grid_engine_cannot_express_are_refused(tmp_path: Path) -> None:
    job = Job("multi")
    job.working_dir = tmp_path
    job.cmd = ["true"]
    job.backend_args = {"nodes": 2}
    with pytest.raises(SpecError, match="no node count"):
        OfflineGE().check_job(job)
    job.backend_args = {"cores": 2}
    with pytest.raises(SpecError, match="parallel_environment"):
        OfflineGE(backend_args={"parallel_environment": "smp; rm"}).check_job(job)


def test_qsub_refusal_reports_the_reason_not_exiting(monkeypatch: pytest.MonkeyPatch) -> None:
    import jobfleet.backends.batch as batch

    def fake_run(argv: list[str], **kwargs: object) -> CommandResult:
        raise CommandError(argv, 1, "", sample("qsub_error_unknown_queue.err"))

    monkeypatch.setattr(batch, "run_command", fake_run)
    with pytest.raises(CommandError, match=r'unknown queue "nosuch"$'):
        OfflineGE().run(["qsub", "-terse", "x.sh"])

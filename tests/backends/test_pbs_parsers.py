"""PBS text in and out (OpenPBS and Torque), on recorded real output (data/pbs, see README)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, SpecError, range_arguments
from jobfleet.backends.batch import ArrayChunk
from jobfleet.backends.pbs import (
    PBS,
    decode_exit_status,
    flavour_from_version,
    format_walltime,
    parse_openpbs_json,
    parse_torque_xml,
)
from jobfleet.commands import CommandResult
from jobfleet.errors import CommandError
from jobfleet.status import JobStatus

DATA = Path(__file__).parent / "data" / "pbs"
GOLDEN = Path(__file__).parent / "golden"


def sample(name: str) -> str:
    return (DATA / name).read_text()


def openpbs(**kwargs: object) -> PBS:
    return PBS(backend_args={"flavour": "openpbs", **kwargs})


def torque(**kwargs: object) -> PBS:
    return PBS(backend_args={"flavour": "torque", **kwargs})


def test_flavour_from_version_output() -> None:
    assert flavour_from_version(sample("openpbs_qsub_version.out")) == "openpbs"
    assert flavour_from_version(sample("torque_qsub_version.err")) == "torque"  # on stderr
    assert flavour_from_version("qstat: invalid option") is None
    with pytest.raises(SpecError, match="flavour"):
        PBS(backend_args={"flavour": "lsf"})


def test_qsub_output_and_subjob_ids() -> None:
    backend = openpbs()
    array = backend.job_id_from_submit_output(sample("openpbs_qsub_J.out"))
    assert array == "9[].djoko"
    assert backend.array_task_id(array, 4) == "9[4].djoko"
    assert backend.job_id_from_submit_output("40.pbs\n") == "40.pbs"
    with pytest.raises(Exception, match="not a job id"):
        backend.job_id_from_submit_output("qsub: Unknown queue\n")


def test_openpbs_json_finished_held_running() -> None:
    finished = parse_openpbs_json(sample("openpbs_qstat_xf_json_finished.out"))["40.pbs"]
    assert (finished.status, finished.exit_code, finished.state) == (JobStatus.completed, 0, "F")
    held = parse_openpbs_json(sample("openpbs_qstat_xf_json_held.out"))["157.pbs"]
    assert held.status is JobStatus.submitted and held.state == "H"
    running = parse_openpbs_json(sample("openpbs_qstat_xf_json_running.out"))
    assert running["12860476.meta-pbs.metacentrum.cz"].status is JobStatus.running
    assert parse_openpbs_json("") == {}


def _document(job_id: str, **attrs: object) -> str:
    """The recorded finished job with another id and some attributes changed (the subjob
    attributes are those of pbs_job_attributes(7B): array_id, array_index; state X)."""
    doc = json.loads(sample("openpbs_qstat_xf_json_finished.out"))
    job = {**doc["Jobs"].pop("40.pbs"), **attrs}
    doc["Jobs"][job_id] = {k: v for k, v in job.items() if v is not None}
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("attrs", "status", "exit_code", "reason"),
    [
        ({"Exit_status": 3}, "failed", 3, None),
        ({"Exit_status": 271}, "failed", 143, None),  # 256 + SIGTERM (qdel, walltime)
        ({"Exit_status": 265}, "failed", 137, None),
        ({"Exit_status": -29}, "failed", -29, "timeout"),  # JOB_EXEC_KILL_WALLTIME
        ({"Exit_status": -27}, "failed", -27, "out of memory"),
        ({"Exit_status": -10}, "failed", -10, "invalid user or group on the execution host"),
        ({"Exit_status": None}, "failed", None, "ended without an exit status (deleted?)"),
        ({"Exit_status": 271, "comment": "job killed: walltime 70 exceeded limit 60"},
         "failed", 143, "timeout"),
        ({"job_state": "X", "Exit_status": 0}, "completed", 0, None),
        ({"job_state": "R", "Exit_status": None}, "running", None, None),
        ({"job_state": "B", "Exit_status": None}, "running", None, None),
        ({"job_state": "Q", "Exit_status": None}, "submitted", None, None),
        ({"job_state": "W", "Exit_status": None}, "submitted", None, None),
    ],
)  # fmt: skip
def test_openpbs_states_and_exit_status(
    attrs: dict[str, object], status: str, exit_code: int | None, reason: str | None
) -> None:
    state = parse_openpbs_json(_document("7[2].srv", array_id="7[].srv", array_index="2", **attrs))
    got = state["7[2].srv"]
    assert (got.status.value, got.exit_code, got.reason) == (status, exit_code, reason)


def test_openpbs_array_parent_is_not_a_unit() -> None:
    doc = json.loads(_document("7[].srv", array="True", job_state="B", Exit_status=None))
    doc["Jobs"].update(json.loads(_document("7[0].srv", job_state="X"))["Jobs"])
    assert set(parse_openpbs_json(json.dumps(doc))) == {"7[0].srv"}


def test_torque_xml_mixed_queue_with_an_array() -> None:
    states = parse_torque_xml(sample("torque_qstat_x_mixed_with_array.out"))
    running = states["665199.superserver.stanford.edu"]
    assert running.status is JobStatus.running and running.exit_code is None  # -3 while R
    assert states["667999.superserver.stanford.edu"].status is JobStatus.submitted
    assert states["673174.superserver.stanford.edu"].status is JobStatus.completed
    assert "673175[].superserver.stanford.edu" not in states  # the array itself
    sub = states["673175[19].fruster.stanford.edu"]
    assert (sub.status, sub.exit_code, sub.state) == (JobStatus.completed, 0, "C")


def test_torque_xml_queued_completed_and_several_documents() -> None:
    queued = sample("torque_qstat_x_queued.out")
    completed = sample("torque_qstat_x_completed.out")
    states = parse_torque_xml(queued + completed)  # one <Data> per queried id
    assert states["4499334.pbsserver"].status is JobStatus.submitted
    assert states["4564045.pbsserver"].status is JobStatus.completed
    failed = parse_torque_xml(completed.replace("<exit_status>0<", "<exit_status>-11<"))
    assert failed["4564045.pbsserver"].reason == "timeout"  # JOB_EXEC_OVERLIMIT_WT
    killed = parse_torque_xml(completed.replace("<exit_status>0<", "<exit_status>271<"))
    assert killed["4564045.pbsserver"].exit_code == 143


def test_exit_status_conventions() -> None:
    assert decode_exit_status(0, "openpbs") == (0, None)
    assert decode_exit_status(271, "torque") == (143, None)
    assert decode_exit_status(-29, "openpbs") == (-29, "timeout")
    assert decode_exit_status(-11, "torque") == (-11, "timeout")
    assert decode_exit_status(-10, "torque") == (-10, "out of memory")
    assert decode_exit_status(-99, "openpbs") == (-99, "execution failed (exit status -99)")


def test_status_command_asks_for_arrays_with_their_subjobs() -> None:
    ids = ["7[0].srv", "7[1].srv", "8.srv", "9[3].srv"]
    assert openpbs().status_command(ids) == [
        "qstat", "-x", "-f", "-F", "json", "-t", "7[].srv", "8.srv", "9[].srv",
    ]  # fmt: skip
    assert torque().status_command(ids) == ["qstat", "-x", "-t", "7[].srv", "8.srv", "9[].srv"]


def test_unknown_ids_do_not_spoil_the_answer_about_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jobfleet.backends.batch as batch

    answers = {
        "qstat": (sample("torque_qstat_x_queued.out"), "qstat: Unknown Job Id Error 5.pbsserver\n"),
        "qdel": ("", "qdel: Job has finished 40.pbs\n"),
    }

    def fake_run(argv: list[str], **kwargs: object) -> CommandResult:
        out, err = answers[argv[0]]
        raise CommandError(argv, 153, out, err)

    monkeypatch.setattr(batch, "run_command", fake_run)
    backend = torque()
    result = backend.run(["qstat", "-x", "-t", "4499334.pbsserver", "5.pbsserver"])
    assert set(backend.parse_status_output(result.stdout)) == {"4499334.pbsserver"}
    backend.run(["qdel", "40.pbs"])
    answers["qdel"] = ("", "qdel: cannot connect to server pbs (errno=15010)\n")
    with pytest.raises(CommandError):
        backend.run(["qdel", "40.pbs"])


def test_walltime_format() -> None:
    assert format_walltime(61) == "00:01:01"
    assert format_walltime(100 * 3600) == "100:00:00"


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


@pytest.mark.parametrize("flavour", ["openpbs", "torque"])
def test_array_script_and_directives_match_golden(tmp_path: Path, flavour: str) -> None:
    job = _scan(
        tmp_path, 3, cores=2, memory="1.5GB", walltime="01:30:00", queue="short",
        account="belle", gpus=1, nodes=1, extra_directives=["-m n"],
    )  # fmt: skip
    backend = PBS(backend_args={"flavour": flavour})
    chunk = ArrayChunk(job, tuple(job.subjobs.values()), 0)
    text = backend.render_array_script(chunk).replace(str(tmp_path), "/TMP")
    _golden(f"pbs_{flavour}_array.sh", text)


def test_single_job_launcher_matches_golden(tmp_path: Path) -> None:
    job = Job("single job; $(rm -rf /)")
    job.working_dir = tmp_path / "single"
    job.cmd = ["echo", "a b"]
    job.backend_args = {"memory": 512, "walltime": 61}
    launcher = openpbs().submission_file(job)
    _golden("pbs_openpbs_single.sh", launcher.read_text().replace(str(tmp_path), "/TMP"))
    assert (job.working_dir / "submit.sh").exists()  # the wrapper the launcher runs


def test_submit_arguments(tmp_path: Path) -> None:
    job = _scan(tmp_path, 6)
    job.working_dir.mkdir(parents=True)
    chunk = ArrayChunk(job, (job.subjobs[0], job.subjobs[1], job.subjobs[4]), 0)
    logs = f"{job.working_dir}/pbs-logs/"
    assert torque().submit_command(Path("/a.sh"), tag="t", array=chunk) == [
        "qsub", "-t", "0-1,4", "-o", logs, "-e", logs, "-v", "JOBFLEET_TAG=t", "/a.sh",
    ]  # fmt: skip
    run = ArrayChunk(job, (job.subjobs[2], job.subjobs[3]), 0)
    assert openpbs().submit_command(Path("/a.sh"), tag="t", array=run)[1:3] == ["-J", "2-3"]
    single = openpbs().submit_command(Path("/j.sh"), tag="t", unit=job.subjobs[5])
    wd = job.subjobs[5].working_dir
    assert single == [
        "qsub", "-o", f"{wd}/pbs.out", "-e", f"{wd}/pbs.err", "-v", "JOBFLEET_TAG=t", "/j.sh",
    ]  # fmt: skip


def test_openpbs_arrays_are_one_range_each(tmp_path: Path) -> None:
    job = _scan(tmp_path, 8)
    subs = [job.subjobs[i] for i in (0, 1, 2, 5, 7)]
    assert [c.indices for c in openpbs()._chunks(job, subs)] == [[0, 1, 2], [5], [7]]
    assert [c.indices for c in torque()._chunks(job, subs)] == [[0, 1, 2, 5, 7]]


@pytest.mark.parametrize(
    ("args", "openpbs_lines", "torque_lines"),
    [
        ({}, [], []),
        ({"cores": 4}, ["-l select=1:ncpus=4"], ["-l nodes=1:ppn=4"]),
        ({"memory": "2GB", "nodes": 2}, ["-l select=2:mem=2048mb"],
         ["-l nodes=2:ppn=1,mem=2048mb"]),
        ({"walltime": 3600}, ["-l walltime=01:00:00"], ["-l walltime=01:00:00"]),
    ],
)  # fmt: skip
def test_resource_directives(
    tmp_path: Path, args: dict[str, object], openpbs_lines: list[str], torque_lines: list[str]
) -> None:
    job = Job("r")
    job.working_dir = tmp_path
    job.cmd = ["true"]
    job.backend_args = args
    for backend, lines in ((openpbs(), openpbs_lines), (torque(), torque_lines)):
        resources = [d for d in backend.directives(job) if d.startswith("#PBS -l")]
        assert resources == [f"#PBS {line}" for line in lines]

"""DIRAC personality of the fake scheduler: dirac-wms-job-submit, -status, -get-output,
-kill, dirac-wms-select-jobs and dirac-proxy-info.

Faithful where the jobfleet backend could get it wrong (see DIRACGrid/DIRAC):

* JDL read the way ``ClassAdLight`` reads it (comment lines dropped, values end
  at ``;``, lists in braces, no escapes); parametric jobs expanded like
  ``ParametricJob.generateParametricJobs`` (``Parameters`` list or count,
  ``%s``, ``%n``, ``Parameters.<name>`` with ``%(<name>)s``), refused above
  ``max_parametric_jobs`` like the JobManager; ``CPUTime`` and ``InputData``
  checked like ``JobModel``.
* The input sandbox is "uploaded" at submission: its files are copied, by base
  name, into the fake's sandbox store. A job runs in a fresh scratch directory
  into which that copy is unpacked, never in the submit-side directory; the
  command ``Executable Arguments`` runs through the shell with stdout/stderr in
  ``StdOutput``/``StdError``; afterwards the files matching ``OutputSandbox``
  (base names only; directories as ``<name>.tar``) become the output sandbox
  and the scratch directory is removed. ``dirac-wms-job-get-output`` copies a
  sandbox into ``<dir>/<job id>/``, with the real script's quirks (an existing
  ``<dir>/<id>`` entry or a ``./<id>`` directory means "already retrieved").
* ``CPUTime`` is enforced as a wall-clock limit, scaled by
  ``seconds_per_cpu_time``: the job fails with the Watchdog's minor status.

Job ids are ``submission number * 1000 + position``: increasing in parameter
order, like DIRAC's. Settings of this personality (``configure_dirac``):
``max_parametric_jobs``, ``site``, ``seconds_per_cpu_time``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fakesched.core import FakeJob, FakeScheduler, Task, job_environment
from fakesched.shims import PACKAGE_ROOT

__all__ = [
    "COMMANDS",
    "JDLError",
    "configure_dirac",
    "expand_parametric",
    "read_jdl",
    "transient_error",
]

SETTINGS: Mapping[str, Any] = {
    "max_parametric_jobs": 100,  # the JobManager's MaxParametricJobs (ConfigTemplate.cfg)
    "site": "DIRAC.Fake.org",
    "seconds_per_cpu_time": 1.0,
    "min_cpu_time": 100,  # JobDescription/MinCPUTime
    "max_cpu_time": 500000,
}
_NO_SANDBOX = (
    "No Output sandbox found for job {id}. Possible causes are: the job does not exist, "
    "no sandbox was registered or you do not have permission to access it."
)
_WALL_CLOCK = "Job has exceeded maximum wall clock time"


class JDLError(Exception):
    """A job description the WMS refuses (the message is what the client prints)."""


def _root(fake: FakeScheduler) -> Path:
    return fake.state_dir / "dirac"


def settings(fake: FakeScheduler) -> dict[str, Any]:
    path = _root(fake) / "settings.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    return {**SETTINGS, **stored}


def configure_dirac(fake: FakeScheduler, **changes: Any) -> None:
    """Change this personality's settings (see the module docstring)."""
    unknown = set(changes) - set(SETTINGS)
    if unknown or not 0 < int(changes.get("max_parametric_jobs", 1)) <= 1000:
        raise ValueError(f"bad DIRAC fake settings: {changes}")
    _root(fake).mkdir(parents=True, exist_ok=True)
    (_root(fake) / "settings.json").write_text(json.dumps({**settings(fake), **changes}))


# -- JDL -------------------------------------------------------------------------------------------


def read_jdl(text: str) -> dict[str, str]:
    """Attribute -> raw expression, as ClassAdLight parses a JDL (after WMSClient's cleanup)."""
    body = "\n".join(line for line in text.strip().splitlines() if not line.strip().startswith("#"))
    body = body.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    attrs: dict[str, str] = {}
    for part in body.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            if part.strip():
                raise JDLError("Invalid job JDL")
            continue
        if "[" in value:  # sub-JDLs do not occur in what jobfleet writes
            raise JDLError("Invalid job JDL")
        attrs[name.strip()] = value.strip().replace("\n", "")
    if not attrs:
        raise JDLError("Invalid job JDL")
    return attrs


def jdl_list(expr: str) -> list[str]:
    """ClassAdLight.getListFromExpression: blanks removed, quotes dropped, inner lists kept."""
    text = expr.strip()
    if text.startswith("{"):
        text = text[1:-1]
    text = text.replace(" ", "")
    items = []
    while text:
        if text.startswith("{"):
            end = text.find("}")
            items.append(text[: end + 1])
            text = text[end + 1 :].removeprefix(",")
        else:
            item, _, text = text.partition(",")
            items.append(item.replace('"', ""))
    return items


def jdl_str(attrs: Mapping[str, str], name: str, default: str = "") -> str:
    return attrs[name].replace('"', "").strip() if name in attrs else default


def expand_parametric(attrs: dict[str, str], limit: int) -> list[dict[str, str]]:
    """One description per job, as ParametricJob.generateParametricJobs makes them."""
    sequences = {name: jdl_list(expr) for name, expr in attrs.items()
                 if name.startswith("Parameters") and expr.strip().startswith("{")}  # fmt: skip
    if "Parameters" in attrs and "Parameters" not in sequences:
        count = int(attrs["Parameters"])  # a count: ParameterStart/Step would build it
        sequences["Parameters"] = [str(int(attrs.get("ParameterStart", "1"))) for _ in range(count)]
    if not sequences:
        return [attrs]
    lengths = {len(values) for values in sequences.values()}
    if len(lengths) != 1:
        raise JDLError("Invalid job description ( 1501 : Different length of parameter vectors)")
    n_jobs = lengths.pop()
    if n_jobs > limit:
        raise JDLError(
            "Invalid job description ( 1501 : "
            f"Number of parametric jobs exceeds the limit of {limit})"
        )
    width = len(str(n_jobs - 1))
    jobs = []
    for n in range(n_jobs):
        job = {}
        for name, expr in attrs.items():
            if name.startswith(("Parameters", "ParameterStart", "ParameterStep")):
                continue
            expr = expr.replace("%n", str(n).zfill(width))
            for seq, values in sequences.items():
                placeholder = "%s" if seq == "Parameters" else f"%({seq.split('.', 1)[1]})s"
                expr = expr.replace(placeholder, values[n])
            job[name] = expr
        job["ParameterNumber"] = str(n)
        jobs.append(job)
    return jobs


def _check(job: Mapping[str, str], cfg: Mapping[str, Any]) -> None:
    """What JobDescriptionModel refuses."""
    if not jdl_str(job, "Executable"):
        raise JDLError("Invalid JDL: executable must not be an empty string")
    cpu = int(job.get("CPUTime", "86400"))
    if not cfg["min_cpu_time"] <= cpu <= cfg["max_cpu_time"]:
        raise JDLError(
            "Invalid JDL: cpuTime out of bounds "
            f"(must be between {cfg['min_cpu_time']} and {cfg['max_cpu_time']})"
        )
    for lfn in jdl_list(job.get("InputData", "{}")):
        if "//" in lfn or not lfn.startswith(("LFN:/", "/")):
            raise JDLError(f"Invalid JDL: Input data files must start with LFN:/ ({lfn})")


# -- commands --------------------------------------------------------------------------------------


def _upload(entries: list[str], store: Path) -> None:
    """WMSClient: every local InputSandbox file, by base name, into one stored sandbox."""
    store.mkdir(parents=True)
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            shutil.copytree(path, store / path.name, symlinks=True)
        else:
            shutil.copy2(path, store / path.name)


def _submit_one(fake: FakeScheduler, jdl: str, cfg: Mapping[str, Any]) -> str:
    """Submit one JDL (file or text); the ``JobID = ...`` line, or :class:`JDLError`."""
    attrs = read_jdl(Path(jdl).read_text() if os.path.exists(jdl) else jdl)
    local = [
        e
        for e in jdl_list(attrs.get("InputSandbox", "{}"))
        if not e.startswith(("lfn:", "LFN:", "SB:", "%s", "%("))
    ]
    if any(not os.path.exists(e) for e in local):
        raise JDLError("Invalid job description ( 1501 : Input Sandbox is not valid)")
    descriptions = expand_parametric(attrs, cfg["max_parametric_jobs"])
    for description in descriptions:
        _check(description, cfg)
    jobs = fake.submit(
        lambda number: _tasks(fake, number, descriptions, local, cfg),
        lambda number, position: str(number * 1000 + position),
    )
    ids = [job.id for job in jobs]
    return f"JobID = {ids[0]}" if "Parameters" not in attrs else f"JobID = [{', '.join(ids)}]"


def dirac_wms_job_submit(fake: FakeScheduler, args: list[str]) -> int:
    cfg, failed = settings(fake), False
    for jdl in [a for a in args if not a.startswith("-")]:
        try:
            print(_submit_one(fake, jdl, cfg))
        except JDLError as err:
            print(f"ERROR {jdl}: {err}")
            failed = True
    return 2 if failed else 0


def _tasks(
    fake: FakeScheduler, number: int, descriptions: list[dict[str, str]], local: list[str],
    cfg: Mapping[str, Any],
) -> list[Task]:  # fmt: skip
    root = _root(fake)
    store = root / "sandboxes" / str(number)
    _upload(local, store)
    tasks = []
    for position, job in enumerate(descriptions):
        job_id = str(number * 1000 + position)
        spec = {
            "id": job_id,
            "command": " ".join(
                filter(None, [jdl_str(job, "Executable"), jdl_str(job, "Arguments")])
            ),
            "stdout": jdl_str(job, "StdOutput", "std.out"),
            "stderr": jdl_str(job, "StdError", "std.err"),
            "output_sandbox": jdl_list(job.get("OutputSandbox", "{}")),
            "sandbox": str(store),
            "work": str(root / "work" / job_id),
            "output": str(root / "output" / job_id),
            "minor": str(root / "minor" / job_id),
            "wall_limit": int(job.get("CPUTime", "86400")) * cfg["seconds_per_cpu_time"],
        }
        (root / "specs").mkdir(parents=True, exist_ok=True)
        spec_path = root / "specs" / f"{job_id}.json"
        spec_path.write_text(json.dumps(spec))
        env = job_environment(False, {"PYTHONPATH": str(PACKAGE_ROOT), "DIRACSITE": cfg["site"],
                                      "DIRACJOBID": job_id, "JOBID": job_id})  # fmt: skip
        attrs = {key: jdl_str(job, key) for key in ("JobName", "JobGroup")}
        attrs["InputData"] = jdl_list(job.get("InputData", "{}"))
        tasks.append(Task(argv=[sys.executable, "-S", "-m", "fakesched.dirac", str(spec_path)],
                          cwd=str(fake.state_dir), env=env, name=attrs["JobName"],
                          stdout=str(root / f"pilot-{job_id}.log"), attrs=attrs))  # fmt: skip
    return tasks


def _state(fake: FakeScheduler, job: FakeJob) -> tuple[str, str]:
    """DIRAC's Status and MinorStatus of a record."""
    if job.state == "queued":
        return "Waiting", "Pilot Agent Submission"
    if job.state == "held":
        return "Waiting", job.hold_reason or "Pilot Agent Submission"
    if job.state == "running":
        return "Running", "Application"
    if job.cancelled:
        return "Killed", "Marked for termination"
    if job.error:
        return "Failed", f"Job Wrapper Initialization: {job.error}"
    if job.exit_code == 0:
        return "Done", "Execution Complete"
    minor = _root(fake) / "minor" / job.id
    return "Failed", minor.read_text() if minor.exists() else "Application Finished With Errors"


def _ids(args: list[str]) -> list[str]:
    return [i.strip() for arg in args if not arg.startswith("-") for i in arg.split(",") if i]


def dirac_wms_job_status(fake: FakeScheduler, args: list[str]) -> int:
    ids = _ids(args)
    if not ids:
        print("Usage:\n  dirac-wms-job-status [option|cfgfile] ... JobID ...")
        return 1
    site = settings(fake)["site"]
    for job in fake.jobs(ids):
        status, minor = _state(fake, job)
        where = "ANY" if status == "Waiting" else site
        print(f"JobID={job.id} ApplicationStatus=Unknown; MinorStatus={minor}; "
              f"Status={status}; Site={where}; ")  # fmt: skip
    return 0


def dirac_wms_job_kill(fake: FakeScheduler, args: list[str]) -> int:
    killed = fake.cancel(_ids(args))
    print(f"Killed jobs {','.join(job.id for job in killed)}")
    return 0


def dirac_wms_job_get_output(fake: FakeScheduler, args: list[str]) -> int:
    out_dir, jobs, rest = os.getcwd(), [], list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-D", "--Dir"):
            out_dir = rest.pop(0)
        elif arg.startswith("--Dir="):
            out_dir = arg.split("=", 1)[1]
        elif os.path.isdir(arg):
            print(
                f"Output for job {arg} already retrieved, remove the output directory to redownload"
            )
        else:
            jobs.extend(_ids([arg]))
    if not jobs:
        print("No jobs selected")
        return 0
    os.makedirs(out_dir, exist_ok=True)
    done, errors = os.listdir(out_dir), []
    for job_id in [j for j in jobs if j not in done]:
        sandbox, target = _root(fake) / "output" / job_id, os.path.join(out_dir, job_id)
        if not sandbox.is_dir():
            errors.append((job_id, _NO_SANDBOX.format(id=job_id)))
            continue
        shutil.copytree(sandbox, target, dirs_exist_ok=True)
        print(f"Files retrieved and extracted in {target}")
        print(f"Job output sandbox retrieved in {target}/")
    for job_id, message in errors:
        print(f"ERROR {job_id}: {message}")
    return 2 if errors else 0


def dirac_wms_select_jobs(fake: FakeScheduler, args: list[str]) -> int:
    group = next((a.split("=", 1)[1] for a in args if a.startswith("--JobGroup=")), None)
    jobs = [j.id for j in fake.jobs() if group is None or j.attrs.get("JobGroup") == group]
    conditions = ", ".join(([f"JobGroup = {group}"] if group else []) + ["Date = Today"])
    if jobs:
        print(f"==> Selected {len(jobs)} jobs with conditions: {conditions}\n{','.join(jobs)}")
    else:
        print(f"No jobs were selected with conditions: {conditions}")
    return 0


def dirac_proxy_info(fake: FakeScheduler, args: list[str]) -> int:
    print("subject      : /O=Fake/CN=jobfleet tester/CN=proxy\ntimeleft     : 23:59:59\n"
          "DIRAC group  : dirac_user\nVOMS         : True")  # fmt: skip
    return 0


COMMANDS: Mapping[str, Callable[[FakeScheduler, list[str]], int]] = {
    "dirac-wms-job-submit": dirac_wms_job_submit,
    "dirac-wms-job-status": dirac_wms_job_status,
    "dirac-wms-job-get-output": dirac_wms_job_get_output,
    "dirac-wms-job-kill": dirac_wms_job_kill,
    "dirac-wms-select-jobs": dirac_wms_select_jobs,
    "dirac-proxy-info": dirac_proxy_info,
}


def transient_error(command: str) -> tuple[str, int]:
    """What a DIRAC client prints when it cannot reach a service (DISET BaseClient)."""
    url = "dips://dirac.fake.org:9130/WorkloadManagement/JobManager"
    return f"ERROR: Can't connect to {url}: TimeoutError('timed out')", 2


# -- the job wrapper (runs on the fake "worker node") ----------------------------------------------


def _wait_for_group(payload: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until no process but this one is left in our process group."""
    me, group = os.getpid(), os.getpgid(0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        payload.poll()
        others = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z" and int(stat.parent.name) != me:
                others.append(stat)
        if not others:
            return
        time.sleep(0.02)
    payload.kill()
    payload.wait()


def job_wrapper(spec_path: str) -> int:
    """Run one DIRAC job: fresh scratch dir, input sandbox, payload, output sandbox."""
    spec = json.loads(Path(spec_path).read_text())
    work, output = Path(spec["work"]), Path(spec["output"])
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(spec["sandbox"], work, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with open(work / spec["stdout"], "wb") as out, open(work / spec["stderr"], "wb") as err:
        # The payload stays in this process group: a kill (or the daemon's end) reaches it.
        payload = subprocess.Popen(spec["command"], shell=True, cwd=work, env=env,
                                   stdout=out, stderr=err)  # fmt: skip
        try:
            code = payload.wait(timeout=spec["wall_limit"])
        except subprocess.TimeoutExpired:  # the Watchdog's wall-clock limit
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.killpg(0, signal.SIGTERM)
            _wait_for_group(payload, timeout=5)  # the payload's traps still write files
            Path(spec["minor"]).parent.mkdir(parents=True, exist_ok=True)
            Path(spec["minor"]).write_text(_WALL_CLOCK)
            code = 1
    staged = output.with_name(output.name + ".partial")
    staged.mkdir(parents=True, exist_ok=True)
    for pattern in spec["output_sandbox"]:
        for match in map(Path, glob.glob(str(work / pattern))):
            if match.is_dir():
                with tarfile.open(staged / f"{match.name}.tar", "w") as tar:
                    tar.add(match, match.name)
            elif match.is_file():
                shutil.copy2(match, staged / match.name)
    if any(staged.iterdir()):
        staged.rename(output)  # registered whole, before the job is seen to end
    shutil.rmtree(staged, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if code < 0 else code


if __name__ == "__main__":
    sys.exit(job_wrapper(sys.argv[1]))

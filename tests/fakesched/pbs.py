"""PBS personality of the fake scheduler, both flavours: qsub, qstat, qdel.

The flavour comes from ``$FAKESCHED_PBS_FLAVOUR`` (``openpbs``, the default, or ``torque``)
in the calling process. Output follows the tools as documented and as recorded in
tests/backends/data/pbs: ids ``12.<server>`` / arrays ``12[].<server>`` with subjobs
``12[3].<server>``; ``qstat -x -f -F json`` (OpenPBS: ``-x`` includes finished jobs as
``F``, subjobs ``X``, ``Exit_status``; with ``-t`` an array's subjobs are listed after it)
and ``qstat -x`` XML (Torque: completed jobs ``C`` with ``exit_status``). A signal shows as
``256 + n``. Unknown ids are reported on stderr per id (``Unknown Job Id``), exit status
153, while the others are still printed. Jobs start in ``$HOME`` (Torque: ``-d``), as
PBS starts them. ``#PBS`` directives are read like options. ``-l walltime=[[H:]M:]S`` is
enforced as the MOM does: SIGTERM, SIGKILL ``kill_grace`` later (the MOM's ``kill_delay``),
then ``Exit_status`` ``-29`` with the comment ``job killed: walltime N exceeded limit M``
(OpenPBS) or ``exit_status`` ``-11`` (Torque). See :mod:`fakesched.core`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from fakesched.core import FakeJob, FakeScheduler, Task, job_environment

__all__ = ["COMMANDS", "flavour", "transient_error"]

SERVER = socket.gethostname().split(".")[0]
QUEUES = {"openpbs": "workq", "torque": "batch"}
_VALUE_OPTS = {"-N", "-q", "-A", "-P", "-l", "-o", "-e", "-j", "-S", "-J", "-t", "-W", "-v",
               "-d", "-w", "-m", "-M", "-p", "-r", "-k", "-a", "-c"}  # fmt: skip
_UNKNOWN = 153  # PBSE_UNKJOBID (15001) as an exit status
_GROUP = re.compile(r"^(\d+)\[(\d*)\]")


def flavour() -> str:
    return os.environ.get("FAKESCHED_PBS_FLAVOUR", "openpbs")


def _options(words: list[str], opts: dict[str, Any]) -> list[str]:
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-h", "-V", "-z", "-I"):
            opts[word] = True
        elif word in _VALUE_OPTS and i + 1 < len(words):
            if word in ("-l", "-W", "-v"):
                opts.setdefault(word, []).append(words[i + 1])
            else:
                opts[word] = words[i + 1]
            i += 1
        elif word == "--":
            return words[i + 1 :]
        elif word.startswith("-"):
            raise ValueError(f"qsub: invalid option -- '{word.lstrip('-')}'")
        else:
            return words[i:]
        i += 1
    return []


def _indices(opts: Mapping[str, Any]) -> list[int] | None:
    if flavour() == "openpbs" and "-J" in opts:
        match = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", opts["-J"])
        if not match or int(match.group(1)) >= int(match.group(2)):
            raise ValueError("qsub: illegal -J value")
        first, last, step = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
        return list(range(first, last + 1, step))
    if flavour() == "torque" and "-t" in opts:
        ids: list[int] = []
        for part in opts["-t"].split("%")[0].split(","):
            first, _, last = part.partition("-")
            ids += range(int(first), int(last or first) + 1)
        return sorted(set(ids))
    return None


def _stream(path: str | None, job_id: str, name: str, kind: str, number: int, index: int | None,
            cwd: str) -> str:  # fmt: skip
    if path is None:
        suffix = f"-{index}" if index is not None else ""
        return os.path.join(cwd, f"{name}.{kind}{number}{suffix}")
    path = path.split(":", 1)[-1] if ":" in path and not path.startswith("/") else path
    if path.endswith("/") or os.path.isdir(path):
        if flavour() == "openpbs":
            return os.path.join(path, f"{job_id}.{'OU' if kind == 'o' else 'ER'}")
        return os.path.join(
            path, f"{name}.{kind}{number}" + (f"-{index}" if index is not None else "")
        )
    return path


def qsub(fake: FakeScheduler, args: list[str]) -> int:
    opts: dict[str, Any] = {}
    try:
        rest = _options(args, opts)
        if not rest:
            raise ValueError("qsub: no script file")
        script = rest[0]
        try:
            text = Path(script).read_text(errors="replace")
        except OSError as err:
            raise ValueError(f"qsub: script file:: {err.strerror}") from None
        embedded: dict[str, Any] = {}
        for line in text.splitlines()[1:]:
            if line.startswith("#PBS"):
                _options(shlex.split(line[4:]), embedded)
            elif line.strip() and not line.startswith("#"):
                break  # directives end at the first command
        opts = {**embedded, **opts}
        indices = _indices(opts)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    queue = opts.get("-q") or QUEUES[flavour()]
    if queue != QUEUES[flavour()]:
        print("qsub: Unknown queue" if flavour() == "openpbs" else
              "qsub: submit error (Unknown queue)", file=sys.stderr)  # fmt: skip
        return 170
    name = opts.get("-N") or Path(script).name
    home = os.environ.get("HOME", "/")
    cwd = (opts.get("-d") if flavour() == "torque" else None) or home
    spool = fake.state_dir / "job_scripts"
    spool.mkdir(exist_ok=True)
    copy = spool / f"script.{time.monotonic_ns()}"
    shutil.copyfile(script, copy)
    submit_dir = os.getcwd()
    variables = dict(
        item.partition("=")[::2] for group in opts.get("-v", []) for item in group.split(",")
    )
    attrs = {"name": name, "queue": queue, "account": opts.get("-A"),
             "resources": opts.get("-l", []), "array": indices, "variables": variables}  # fmt: skip

    def make_id(number: int, position: int) -> str:
        return f"{number}[{indices[position]}].{SERVER}" if indices else f"{number}.{SERVER}"

    def build(number: int) -> list[Task]:
        tasks = []
        for position, index in enumerate(indices or [None]):
            job_id = make_id(number, position)
            env = {**variables, "PBS_JOBID": job_id, "PBS_JOBNAME": name,
                   "PBS_O_WORKDIR": submit_dir, "PBS_QUEUE": queue,
                   "PBS_ENVIRONMENT": "PBS_BATCH"}  # fmt: skip
            if index is not None:
                env["PBS_ARRAY_INDEX" if flavour() == "openpbs" else "PBS_ARRAYID"] = str(index)
                env["PBS_ARRAY_ID"] = f"{number}[].{SERVER}"
            out = _stream(opts.get("-o"), job_id, name, "o", number, index, submit_dir)
            joined = opts.get("-j") in ("oe", "eo")
            err = (
                out
                if joined
                else _stream(opts.get("-e"), job_id, name, "e", number, index, submit_dir)
            )
            argv = [opts.get("-S") or "/bin/bash", str(copy), *rest[1:]]
            tasks.append(Task(argv, cwd, job_environment(bool(opts.get("-V")), env), name, out,
                              err, None, {**attrs, "index": index},
                              walltime=_walltime_s(opts.get("-l", []))))  # fmt: skip
        return tasks

    jobs = fake.submit(build, make_id)
    if opts.get("-h"):
        fake.hold([job.id for job in jobs], "user hold (qsub -h)")
    number = jobs[0].number
    print(f"{number}[].{SERVER}" if indices else f"{number}.{SERVER}")
    return 0


def _walltime_s(resources: list[str]) -> int | None:
    """The ``walltime=[[H:]M:]S`` among ``-l`` resource lists, in seconds."""
    for entry in resources:
        m = re.search(r"(?:^|[,:])walltime=([\d:]+)", entry)
        if m:
            seconds = 0
            for part in m.group(1).split(":"):
                seconds = seconds * 60 + int(part)
            return seconds
    return None


def _letter(job: FakeJob) -> str:
    if job.state == "running":
        return "E" if job.cancelled else "R"
    if job.state == "held":
        return "H"
    if job.state == "queued":
        return "Q"
    return ("X" if job.attrs["index"] is not None else "F") if flavour() == "openpbs" else "C"


def _exit_status(job: FakeJob) -> int | None:
    if job.start_time is None:
        return None  # deleted before it ran: no exit status
    if job.timed_out:
        return -29 if flavour() == "openpbs" else -11  # JOB_EXEC_KILL_WALLTIME / _OVERLIMIT_WT
    if job.signal is not None:
        return 256 + job.signal
    if job.error:
        return -1  # JOB_EXEC_FAIL1: could not start
    return job.exit_code


def _attrs(job: FakeJob) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Job_Name": job.attrs["name"], "Job_Owner": f"{job.user}@{SERVER}",
        "job_state": _letter(job), "queue": job.attrs["queue"], "server": SERVER,
        "ctime": time.ctime(job.submit_time), "Output_Path": f"{SERVER}:{job.stdout}",
        "Error_Path": f"{SERVER}:{job.stderr}",
        "Variable_List": dict(job.attrs.get("variables") or {}),
    }  # fmt: skip
    if job.attrs["index"] is not None:
        data["array_id"] = f"{job.number}[].{SERVER}"
        data["array_index"] = str(job.attrs["index"])
    if not job.active and _exit_status(job) is not None:
        data["Exit_status"] = _exit_status(job)
    if job.timed_out and job.walltime is not None and job.limit_time and job.start_time:
        used = int(job.limit_time - job.start_time)
        data["comment"] = f"job killed: walltime {used} exceeded limit {int(job.walltime)}"
    return data


def _variables(job: FakeJob) -> str:
    """Torque's ``Variable_List``: ``NAME=value`` pairs joined by commas."""
    return ",".join(f"{k}={v}" for k, v in (job.attrs.get("variables") or {}).items())


def _select(fake: FakeScheduler, ids: list[str], subjobs: bool) -> tuple[list[Any], list[str]]:
    """What the ids name: ``(entries, unknown ids)``; an entry is a job or an array group."""
    everything = fake.jobs()
    entries: list[Any] = []
    unknown = []
    for wanted in ids:
        match = _GROUP.match(wanted)
        if match and not match.group(2):  # an array: "12[]"
            members = [j for j in everything if j.number == int(match.group(1))]
            if members:
                entries.append(("array", members))
                entries += members if subjobs else []
                continue
        else:
            found = [j for j in everything if j.id == wanted or j.id.split(".")[0] == wanted]
            if found:
                entries += found
                continue
        unknown.append(wanted)
    return entries, unknown


def _array_state(members: list[FakeJob]) -> str:
    if all(not m.active for m in members):
        return "F" if flavour() == "openpbs" else "C"
    if any(m.start_time is not None for m in members):
        return "B" if flavour() == "openpbs" else "R"
    return "Q"


def qstat(fake: FakeScheduler, args: list[str]) -> int:
    if args == ["--version"]:
        if flavour() == "openpbs":
            print("pbs_version = 22.05.11")
        else:
            print(
                "Version: 6.1.3\nCommit: 0000000000000000000000000000000000000000", file=sys.stderr
            )
        return 0
    history = "-x" in args if flavour() == "openpbs" else True  # Torque: -x is XML
    ids = [a for a in args if not a.startswith("-") and a not in ("json",)]
    if not ids:  # every job: arrays as one entry each
        known = {(j.number, j.attrs["index"] is not None): j.id for j in fake.jobs()}
        ids = [f"{n}[]" if array else jid for (n, array), jid in known.items()]
    entries, unknown = _select(fake, ids, "-t" in args)
    if flavour() == "openpbs" and not history:
        entries = [e for e in entries if isinstance(e, tuple) or e.active]
    if flavour() == "openpbs":
        jobs: dict[str, Any] = {}
        for entry in entries:
            if isinstance(entry, tuple):
                members = entry[1]
                head = {**_attrs(members[0]), "job_state": _array_state(members), "array": "True",
                        "array_indices_submitted": f"{members[0].attrs['array'][0]}-"
                                                   f"{members[0].attrs['array'][-1]}"}  # fmt: skip
                head.pop("array_id"), head.pop("array_index")
                jobs[f"{members[0].number}[].{SERVER}"] = head
            else:
                jobs[entry.id] = _attrs(entry)
        doc = {"timestamp": int(time.time()), "pbs_version": "22.05.11", "pbs_server": SERVER,
               "Jobs": jobs}  # fmt: skip
        print(json.dumps(doc, indent=4))
    else:
        parts = ["<Data>"]
        for entry in entries:
            if isinstance(entry, tuple):
                members = entry[1]
                spec = ",".join(str(m.attrs["index"]) for m in members)
                parts.append(f"<Job><Job_Id>{members[0].number}[].{SERVER}</Job_Id>"
                             f"<job_state>{_array_state(members)}</job_state>"
                             f"<Variable_List>{escape(_variables(members[0]))}</Variable_List>"
                             f"<job_array_request>{spec}</job_array_request></Job>")  # fmt: skip
                continue
            data = _attrs(entry)
            fields = [("Job_Id", entry.id), ("Job_Name", data["Job_Name"]),
                      ("Job_Owner", data["Job_Owner"]), ("job_state", data["job_state"]),
                      ("queue", data["queue"]), ("server", SERVER),
                      ("Variable_List", _variables(entry))]  # fmt: skip
            if "Exit_status" in data:
                fields.append(("exit_status", data["Exit_status"]))
            if entry.attrs["index"] is not None:
                fields.append(("job_array_id", entry.attrs["index"]))
            parts.append(
                "<Job>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields) + "</Job>"
            )
        print("".join([*parts, "</Data>"]))
    for wanted in unknown:
        error = "Unknown Job Id" if flavour() == "openpbs" else "Unknown Job Id Error"
        print(f"qstat: {error} {wanted}", file=sys.stderr)
    return _UNKNOWN if unknown else 0


def qdel(fake: FakeScheduler, args: list[str]) -> int:
    failed = 0
    entries, unknown = _select(fake, [a for a in args if not a.startswith("-")], True)
    targets = [e for e in entries if not isinstance(e, tuple)]
    finished = [j.id for j in targets if not j.active]
    fake.cancel([j.id for j in targets if j.active])
    for job_id in finished:
        if flavour() == "openpbs":
            print(f"qdel: Job has finished {job_id}", file=sys.stderr)
        else:
            said = "Request invalid for state of job MSG=invalid state for job - COMPLETE"
            print(f"qdel: {said} {job_id}", file=sys.stderr)
        failed = 35
    for wanted in unknown:
        error = "Unknown Job Id" if flavour() == "openpbs" else "Unknown Job Id Error"
        print(f"qdel: {error} {wanted}", file=sys.stderr)
        failed = _UNKNOWN
    return failed


COMMANDS: Mapping[str, Callable[[FakeScheduler, list[str]], int]] = {
    "qsub": qsub, "qstat": qstat, "qdel": qdel,
}  # fmt: skip


def transient_error(command: str) -> tuple[str, int]:
    if flavour() == "openpbs":
        return (
            f"Connection refused\n{command}: cannot connect to server {SERVER} (errno=15010)",
            255,
        )
    return f"{command}: cannot connect to server {SERVER} (errno=111) Connection refused", 1

"""IBM Spectrum LSF personality of the fake scheduler: bsub, bjobs, bkill.

``bsub [options] command [args]`` or ``bsub [options] < script`` (``#BSUB``
lines of a script read from stdin, or given as the command, are options too, as
with ``LSB_BSUB_PARSE_SCRIPT=Y``); job arrays ``-J "name[1-50]"``,
``"name[1,3,5-7]"``, ``"name[1-9:2]%4"`` with ``$LSB_JOBINDEX`` counting from 1;
``%J`` / ``%I`` in ``-o``, ``-e`` and ``-cwd``. ``bjobs -o "fields" -json`` prints
the ``COMMAND`` / ``JOBS`` / ``RECORDS`` document, with an ``ERROR`` record for
each id it does not know. ``-W [hour:]minute`` is a run limit in minutes, as in
LSF: past it the job gets the TERMINATE action (SIGINT, SIGTERM, then SIGKILL,
``kill_grace`` apart where LSF waits ``JOB_TERMINATE_INTERVAL``) and ends
``EXIT`` with reason ``TERM_RUNLIMIT``. See :mod:`fakesched.core` for the interface.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fakesched.core import FakeJob, FakeScheduler, Task, job_environment

__all__ = ["COMMANDS", "DEFAULT_CONFIG", "array_indices", "transient_error"]

DEFAULT_CONFIG: Mapping[str, Any] = {"first_number": 4001}

#: bsub options that take a value (the others used here are flags).
_WITH_VALUE = {"-J", "-o", "-oo", "-e", "-eo", "-cwd", "-q", "-n", "-R", "-M", "-W", "-P",
               "-Jd", "-env", "-G", "-gpu", "-app", "-i", "-u", "-m", "-w", "-L"}  # fmt: skip
_ARRAY = re.compile(r"^(?P<name>[^\[]*)\[(?P<spec>[^\]]+)\](?:%(?P<limit>\d+))?$")
_FIELDS = {"id": "jobid", "name": "job_name"}


def array_indices(spec: str) -> list[int]:
    """``"1-10"``, ``"1,3,5-7"``, ``"1-9:2"`` -> the indices, in order."""
    indices: list[int] = []
    for part in spec.split(","):
        m = re.match(r"^\s*(\d+)(?:-(\d+)(?::(\d+))?)?\s*$", part)
        if m is None:
            raise ValueError(f"Bad job name. Job not submitted. ({part!r})")
        first, last, step = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3) or 1)
        indices.extend(range(first, last + 1, step))
    if not indices or min(indices) < 1:
        raise ValueError("Bad job name. Job not submitted.")
    return indices


def run_limit_s(value: str) -> int:
    """``-W`` ``[hour:]minute`` -> seconds (LSF's run limit unit is the minute)."""
    m = re.fullmatch(r"(?:(\d+):)?(\d+)", value.strip())
    if m is None:
        raise ValueError(f"{value}: Bad RUNLIMIT specification. Job not submitted.")
    return (int(m.group(1) or 0) * 60 + int(m.group(2))) * 60


def _directives(script: str) -> list[str]:
    options: list[str] = []
    for line in script.splitlines():
        if line.startswith("#BSUB"):
            options += shlex.split(line[len("#BSUB") :])
    return options


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag = args[i]
        if flag in _WITH_VALUE:
            if i + 1 >= len(args):
                raise ValueError(f"{flag}: option requires an argument. Job not submitted.")
            options[flag] = args[i + 1]
            i += 2
        else:
            options[flag] = ""
            i += 1
    return options, args[i:]


def bsub(fake: FakeScheduler, args: list[str]) -> int:
    try:
        options, command = _parse(args)
        script_text = None
        if not command:
            script_text = sys.stdin.read()
            options = {**dict(_pairs(_directives(script_text))), **options}
        elif Path(command[0]).is_file() and len(command) == 1:
            text = Path(command[0]).read_text(errors="replace")
            options = {**dict(_pairs(_directives(text))), **options}
        return _submit(fake, options, command, script_text)
    except ValueError as err:
        print(str(err), file=sys.stderr)
        return 255


def _pairs(tokens: list[str]) -> list[tuple[str, str]]:
    options, rest = _parse(tokens)
    if rest:
        raise ValueError(f"#BSUB: unexpected {rest[0]!r}. Job not submitted.")
    return list(options.items())


def _submit(
    fake: FakeScheduler, options: dict[str, str], command: list[str], script: str | None
) -> int:
    name = options.get("-J", "")
    m = _ARRAY.match(name)
    indices = array_indices(m.group("spec")) if m else [0]
    base_name = m.group("name") if m else (name or " ".join(command)[:60] or "sh")
    queue = options.get("-q", "normal")
    if not re.match(r"^[\w.-]+$", queue):
        print(f"{queue}: No such queue. Job not submitted.", file=sys.stderr)
        return 255
    submit_cwd = os.getcwd()
    env_mode = options.get("-env", "all").strip('"').lower()
    walltime = run_limit_s(options["-W"]) if "-W" in options else None

    def tasks(number: int) -> list[Task]:
        spool = None
        if script is not None:
            spool = fake.state_dir / f"lsf_script.{number}"
            spool.write_text(script)
        made = []
        for index in indices:

            def expand(text: str, index: int = index) -> str:
                return text.replace("%J", str(number)).replace("%I", str(index))

            cwd = Path(submit_cwd, expand(options.get("-cwd", submit_cwd)))
            out = options.get("-oo", options.get("-o"))
            err = options.get("-eo", options.get("-e"))
            stdout = str(cwd / expand(out)) if out else None
            stderr = str(cwd / expand(err)) if err else stdout
            extra = {"LSB_JOBID": str(number), "LSB_JOBINDEX": str(index), "LSB_QUEUE": queue,
                     "LSB_JOBNAME": f"{base_name}[{index}]" if m else base_name,
                     "LS_SUBCWD": submit_cwd}  # fmt: skip
            made.append(Task(
                argv=["bash", str(spool)] if spool else command,
                cwd=str(cwd),
                env=job_environment(env_mode != "none", extra),
                name=extra["LSB_JOBNAME"],
                stdout=stdout,
                stderr=stderr,
                attrs={"QUEUE": queue, "JOBINDEX": index, "JOB_DESCRIPTION": options.get("-Jd", ""),
                       "PROJ_NAME": options.get("-P", "default"), "SUB_CWD": submit_cwd},
                walltime=walltime, limit_signals=[signal.SIGINT, signal.SIGTERM],
            ))  # fmt: skip
        return made

    jobs = fake.submit(tasks, lambda number, pos: f"{number}[{indices[pos]}]" if m else str(number))
    print(f"Job <{jobs[0].number}> is submitted to queue <{queue}>.")
    return 0


# -- bjobs ----------------------------------------------------------------------------------------


def _stat(job: FakeJob) -> str:
    if job.state == "queued":
        return "PEND"
    if job.state == "held":
        return "PSUSP"
    if job.state == "running":
        return "RUN"
    return "DONE" if job.exit_code == 0 and not job.cancelled else "EXIT"


def _record(job: FakeJob, fields: list[str]) -> dict[str, str]:
    stat = _stat(job)
    code = job.exit_code if job.signal is None else 128 + job.signal
    if job.cancelled:
        reason = "TERM_OWNER: job killed by owner"
    elif job.timed_out:
        reason = "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
    elif job.error:
        reason = f"job could not start: {job.error}"
    else:
        reason = ""
    values = {
        "jobid": str(job.number), "jobindex": str(job.attrs.get("JOBINDEX", 0)), "stat": stat,
        "exit_code": "" if stat != "EXIT" or code is None else str(code),
        "exit_reason": reason, "job_name": job.name, "user": job.user,
        "queue": str(job.attrs.get("QUEUE", "")),
        "job_description": str(job.attrs.get("JOB_DESCRIPTION", "")),
        "proj_name": str(job.attrs.get("PROJ_NAME", "")), "exec_cwd": job.cwd,
        "output_file": job.stdout or "", "error_file": job.stderr or "",
        "pend_reason": (job.hold_reason or "") if stat == "PSUSP" else "",
        "sub_cwd": str(job.attrs.get("SUB_CWD", "")),
    }  # fmt: skip
    return {f.upper(): values.get(f, "") for f in fields}


def _quote(value: str) -> str:
    """A JSON string as LSF writes it: ``/`` escaped as ``\\/``."""
    return json.dumps(value).replace("/", "\\/")


def _json(records: list[dict[str, str]]) -> str:
    blocks = [
        "    {\n" + ",\n".join(f'      "{k}":{_quote(v)}' for k, v in rec.items()) + "\n    }"
        for rec in records
    ]
    body = ",\n".join(blocks)
    return (f'{{\n  "COMMAND":"bjobs",\n  "JOBS":{len(records)},\n  "RECORDS":[\n'
            f"{body}{chr(10) if blocks else ''}  ]\n}}\n")  # fmt: skip


def bjobs(fake: FakeScheduler, args: list[str]) -> int:
    fields, as_json, every, ids, description = ["jobid", "stat"], False, False, [], None
    it = iter(args)
    for arg in it:
        if arg == "-o":
            spec = next(it, "").strip("'\"")
            spec = re.sub(r"delimiter='.'", "", spec)
            fields = [_FIELDS.get(f.split(":")[0].lower(), f.split(":")[0].lower())
                      for f in spec.split()]  # fmt: skip
        elif arg == "-json":
            as_json = True
        elif arg in ("-a", "-d"):
            every = True
        elif arg == "-Jd":
            description = next(it, "")
        elif arg in ("-u", "-q", "-J", "-m"):
            next(it, None)
        elif not arg.startswith("-"):
            ids.append(arg)
    known = fake.jobs()
    records: list[dict[str, str]] = []
    missing: list[str] = []
    if ids:
        for wanted in ids:
            found = [j for j in known if j.id == wanted or str(j.number) == wanted]
            if not found:
                missing.append(wanted)
            records.extend(_record(j, fields) for j in found)
    else:
        chosen = [j for j in known if every or j.active]
        if description is not None:
            chosen = [j for j in chosen if j.attrs.get("JOB_DESCRIPTION") == description]
        records = [_record(j, fields) for j in chosen]
    if as_json:
        errors = [{"JOBID": i, "ERROR": f"Job <{i}> is not found"} for i in missing]
        sys.stdout.write(_json(records + errors))
        return 255 if missing else 0
    for i in missing:
        print(f"Job <{i}> is not found", file=sys.stderr)
    if not records and not ids:
        print("No unfinished job found" if not every else "No job found", file=sys.stderr)
        return 255
    if records:
        print(" ".join(f.upper() for f in fields))
        for rec in records:
            print(" ".join(v or "-" for v in rec.values()))
    return 255 if missing else 0


def bkill(fake: FakeScheduler, args: list[str]) -> int:
    known = fake.jobs()
    wanted = [a for a in args if not a.startswith("-")]
    targets = {w: [j.id for j in known if j.id == w or str(j.number) == w] for w in wanted}
    # One call for all: killing some must not let a pending one start meanwhile.
    done = {j.id for j in fake.cancel([jid for ids in targets.values() for jid in ids])}
    status = 0
    for wanted_id, ids in targets.items():
        if not ids:
            print(f"Job <{wanted_id}>: No matching job found", file=sys.stderr)
            status = 255
        elif not done.intersection(ids):
            print(f"Job <{wanted_id}>: Job has already finished", file=sys.stderr)
            status = 255
        else:
            print(f"Job <{wanted_id}> is being terminated")
    return status


COMMANDS: Mapping[str, Callable[[FakeScheduler, list[str]], int]] = {
    "bsub": bsub,
    "bjobs": bjobs,
    "bkill": bkill,
}


def transient_error(command: str) -> tuple[str, int]:
    """What the LSF tools print when mbatchd does not answer in time."""
    if command == "bsub":
        return "Failed in an LSF library call: Communication time out. Job not submitted.", 255
    return "Failed in an LSF library call: Communication time out", 255

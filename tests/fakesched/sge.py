"""Grid Engine personality of the fake scheduler: qsub, qstat, qacct, qdel, qconf.

Output as Son of Grid Engine 8.1.9 prints it (recorded in tests/backends/data/sge):
``qsub -terse`` ids (``12`` or ``12.1-10:1``), ``qstat -xml`` job lists (running tasks one
by one, pending tasks as ranges ``9-20:1`` or lists ``1,3,4``), ``qacct -j`` records,
``qdel`` messages, ``qconf -sconf``. Embedded ``#$`` directives are read like options.
A job that cannot start stays in the error state ``Eqw`` (the core's
``start_failure_holds``), as real Grid Engine leaves it. ``-l h_rt=[[H:]M:]S`` is enforced
as on the cell of ci/sge: SIGKILL when it is reached (no ``s_rt`` warning signal), then
``qacct`` says ``failed 37`` with ``exit_status 137``. See :mod:`fakesched.core`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fakesched.core import FakeJob, FakeScheduler, Task, job_environment

__all__ = ["COMMANDS", "DEFAULT_CONFIG", "transient_error"]

DEFAULT_CONFIG: Mapping[str, Any] = {"start_failure_holds": True}
USER_HOLD = "user hold (qsub -h)"
QUEUES = ("all.q",)
PES = ("smp",)
PROJECTS = ("jobfleet",)
COMPLEXES = ("h_vmem", "h_rt", "s_rt", "h_cpu", "gpu", "mem_free", "arch", "hostname")
_VALUE_OPTS = {"-N", "-q", "-P", "-A", "-o", "-e", "-wd", "-t", "-S", "-ac", "-l", "-j", "-b", "-M",
               "-m"}  # fmt: skip
_XSD = "http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd"
_HOST = socket.gethostname().split(".")[0]


class QsubError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _options(words: list[str], opts: dict[str, Any]) -> list[str]:
    """Fill ``opts`` from qsub options; returns what is left (the script and its args)."""
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-terse", "-cwd", "-h", "-V"):
            opts[word] = True
        elif word == "-pe":
            opts["-pe"] = (words[i + 1], words[i + 2])
            i += 2
        elif word in _VALUE_OPTS:
            if word in ("-l", "-ac"):
                opts.setdefault(word, []).append(words[i + 1])
            else:
                opts[word] = words[i + 1]
            i += 1
        elif word.startswith("-"):
            raise QsubError(f'ERROR! invalid option argument "{word}"')
        else:
            return words[i:]
        i += 1
    return []


def _tasks_spec(spec: str) -> list[int]:
    first, _, rest = spec.partition("-")
    last, _, step = rest.partition(":")
    try:
        ids = list(range(int(first), int(last or first) + 1, int(step or 1)))
    except ValueError:
        raise QsubError(f'ERROR! -t option requires an argument, not "{spec}"') from None
    if not ids or ids[0] < 1:
        raise QsubError("ERROR! -t option: task ids must be greater than 0")
    return ids


def _check(opts: Mapping[str, Any]) -> None:
    if opts.get("-q") and opts["-q"] not in QUEUES:
        raise QsubError(
            f'Unable to run job: Job was rejected because job requests unknown queue "{opts["-q"]}"'
        )
    if opts.get("-P") and opts["-P"] not in PROJECTS:
        raise QsubError(
            f'Unable to run job: job rejected: the requested project "{opts["-P"]}" does not exist'
        )
    if "-pe" in opts and opts["-pe"][0] not in PES:
        pe = opts["-pe"][0]
        raise QsubError(
            "Unable to run job: job rejected: the requested parallel environment "
            f'"{pe}" does not exist'
        )
    for request in opts.get("-l", []):
        for item in request.split(","):
            name = item.partition("=")[0]
            if name not in COMPLEXES:
                raise QsubError(f'Unable to run job: unknown resource "{name}"')


def _h_rt(requests: list[str]) -> int | None:
    """Seconds of an ``h_rt=[[H:]M:]S`` request among the ``-l`` lists."""
    for request in requests:
        for item in request.split(","):
            name, _, value = item.partition("=")
            if name == "h_rt":
                seconds = 0
                for part in value.split(":"):
                    seconds = seconds * 60 + int(part or 0)
                return seconds
    return None


def _stream(path: str | None, name: str, kind: str, number: int, task: int | None, cwd: str) -> str:
    """Where -o / -e puts a stream: a directory gets ``<name>.o<job>[.<task>]``."""
    base = f"{name}.{kind}{number}" + (f".{task}" if task is not None else "")
    if not path:
        return os.path.join(cwd, base)
    path = os.path.join(cwd, path)
    if path.endswith("/") or os.path.isdir(path):
        return os.path.join(path, base)
    return path


def qsub(fake: FakeScheduler, args: list[str]) -> int:
    opts: dict[str, Any] = {}
    try:
        rest = _options(args, opts)
        if not rest:
            raise QsubError("Unable to read script file because of error: no script given", 14)
        script = rest[0]
        try:
            text = Path(script).read_text(errors="replace")
        except OSError as err:
            raise QsubError(
                "Unable to read script file because of error: error opening "
                f"{script}: {err.strerror}",
                14,
            ) from None
        embedded: dict[str, Any] = {}
        for line in text.splitlines():
            if line.startswith("#$"):
                _options(shlex.split(line[2:]), embedded)
        opts = {**embedded, **opts}
        _check(opts)
        tasks = _tasks_spec(opts["-t"]) if "-t" in opts else None
    except QsubError as err:
        print(f"{err}\nExiting." if err.code == 1 else str(err), file=sys.stderr)
        return err.code
    name = opts.get("-N") or Path(script).name
    cwd = opts.get("-wd") or (os.getcwd() if opts.get("-cwd") else os.environ.get("HOME", "/"))
    spool = fake.state_dir / "job_scripts"
    spool.mkdir(exist_ok=True)
    copy = spool / f"script.{time.monotonic_ns()}"
    shutil.copyfile(script, copy)  # the real qsub spools the script at submission
    context = dict(item.partition("=")[::2] for ac in opts.get("-ac", []) for item in ac.split(","))
    attrs = {
        "name": name, "queue": opts.get("-q") or "all.q", "project": opts.get("-P") or "NONE",
        "account": opts.get("-A") or "sge",
        "category": " ".join(f"-l {r}" for r in opts.get("-l", [])),
        "slots": int(opts["-pe"][1]) if "-pe" in opts else 1, "context": context,
        "tasks": f"{tasks[0]}-{tasks[-1]}:{tasks[1] - tasks[0] if len(tasks) > 1 else 1}"
        if tasks else None,
    }  # fmt: skip

    def build(number: int) -> list[Task]:
        out = []
        for task in tasks or [None]:
            env = {"JOB_ID": str(number), "JOB_NAME": name, "SGE_TASK_ID": str(task or "undefined"),
                   "SGE_O_WORKDIR": os.getcwd(), "QUEUE": attrs["queue"]}  # fmt: skip
            if tasks:
                env.update(SGE_TASK_FIRST=str(tasks[0]), SGE_TASK_LAST=str(tasks[-1]))
            stdout = _stream(opts.get("-o"), name, "o", number, task, cwd)
            joined = opts.get("-j", "n").lower().startswith("y")
            stderr = stdout if joined else _stream(opts.get("-e"), name, "e", number, task, cwd)
            argv = [opts.get("-S") or "/bin/bash", str(copy), *rest[1:]]
            out.append(Task(argv, cwd, job_environment(bool(opts.get("-V")), env), name,
                            stdout, stderr, None, {**attrs, "task": task},
                            walltime=_h_rt(opts.get("-l", [])),
                            limit_signals=[signal.SIGKILL]))  # fmt: skip
        return out

    jobs = fake.submit(
        build, lambda number, pos: f"{number}.{tasks[pos]}" if tasks else str(number)
    )
    if opts.get("-h"):
        fake.hold([job.id for job in jobs], USER_HOLD)
    number = jobs[0].number
    if opts.get("-terse"):
        print(f"{number}.{attrs['tasks']}" if tasks else number)
    elif tasks:
        print(f'Your job-array {number}.{attrs["tasks"]} ("{name}") has been submitted')
    else:
        print(f'Your job {number} ("{name}") has been submitted')
    return 0


def _state(fake: FakeScheduler, job: FakeJob) -> str:
    if job.state == "running":
        return "dr" if job.cancelled else "r"
    if job.state == "held":
        system_hold = job.hold_reason in (USER_HOLD, fake.config().hold_reason)
        return "hqw" if system_hold else "Eqw"
    return "qw"


def _task_list(tasks: list[int]) -> str:
    if len(tasks) > 1 and tasks == list(range(tasks[0], tasks[-1] + 1)):
        return f"{tasks[0]}-{tasks[-1]}:1"
    return ",".join(str(t) for t in tasks)


def _entry(job: FakeJob, state: str, tasks: str | None, running: bool) -> str:
    when = time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime(job.start_time if running else job.submit_time)
    )
    lines = [
        f'    <job_list state="{"running" if running else "pending"}">',
        f"      <JB_job_number>{job.number}</JB_job_number>",
        "      <JAT_prio>0.50000</JAT_prio>",
        f"      <JB_name>{job.attrs['name']}</JB_name>",
        f"      <JB_owner>{job.user}</JB_owner>",
        f"      <state>{state}</state>",
        f"      <{'JAT_start_time' if running else 'JB_submission_time'}>{when}"
        f"</{'JAT_start_time' if running else 'JB_submission_time'}>",
        f"      <queue_name>{'all.q@' + _HOST if running else ''}</queue_name>",
        f"      <slots>{job.attrs['slots']}</slots>",
    ]
    if tasks is not None:
        lines.append(f"      <tasks>{tasks}</tasks>")
    return "\n".join([*lines, "    </job_list>"])


def qstat(fake: FakeScheduler, args: list[str]) -> int:
    if args[:1] == ["-j"]:
        return _qstat_j(fake, args[1:])
    if "-xml" not in args:
        print("fake qstat: only -xml and -j are implemented", file=sys.stderr)
        return 2
    users = args[args.index("-u") + 1].split(",") if "-u" in args else None
    expand = "-g" in args and args[args.index("-g") + 1] == "d"
    jobs = [j for j in fake.queue() if users is None or "*" in users or j.user in users]
    running = [
        _entry(j, _state(fake, j), None if j.attrs["task"] is None else str(j.attrs["task"]), True)
        for j in jobs
        if j.state == "running"
    ]
    pending: list[str] = []
    groups: dict[tuple[int, str], list[FakeJob]] = {}
    for job in jobs:
        if job.state != "running":
            groups.setdefault((job.number, _state(fake, job)), []).append(job)
    for (_, state), members in groups.items():
        if members[0].attrs["task"] is None:
            pending.append(_entry(members[0], state, None, False))
        elif expand:
            pending += [_entry(m, state, str(m.attrs["task"]), False) for m in members]
        else:
            tasks = _task_list([m.attrs["task"] for m in members])
            pending.append(_entry(members[0], state, tasks, False))
    print("<?xml version='1.0'?>")
    print(f'<job_info  xmlns:xsd="{_XSD}">')
    print("\n".join(["  <queue_info>", *running, "  </queue_info>", "  <job_info>", *pending]))
    print("  </job_info>\n</job_info>")
    return 0


def _qstat_j(fake: FakeScheduler, args: list[str]) -> int:
    jobs = fake.queue()
    if not jobs:
        print(f"Following jobs do not exist: \n{' '.join(args)}", file=sys.stderr)
        return 1
    seen: set[int] = set()
    for job in jobs:
        if job.number in seen:
            continue
        seen.add(job.number)
        print("=" * 62)
        print(f"{'job_number:':28}{job.number}")
        print(f"{'owner:':28}{job.user}")
        print(f"{'job_name:':28}{job.attrs['name']}")
        if job.attrs["tasks"]:
            print(f"{'job-array tasks:':28}{job.attrs['tasks']}")
        if job.attrs["context"]:
            context = ",".join(f"{k}={v}" for k, v in job.attrs["context"].items())
            print(f"{'context:':28}{context}")
    return 0


def qacct(fake: FakeScheduler, args: list[str]) -> int:
    if args[:2] == ["-A", args[1] if len(args) > 1 else ""] and args[2:] == ["-j"]:
        # every job of that account string; none: only the (empty) summary table
        records = [j for j in fake.history() if j.attrs.get("account", "sge") == args[1]]
        records = [j for j in records if j.start_time is not None]
        if not records:
            print(f"{'ACCOUNT':<17}WALLCLOCK\n{'=' * 60}")
            return 0
    elif args[:1] != ["-j"] or len(args) < 2:
        print("fake qacct: only -j <job id> and -A <account> -j are implemented", file=sys.stderr)
        return 2
    else:
        records = [j for j in fake.history() if str(j.number) == args[1].split(".")[0]]
        records = [j for j in records if j.start_time is not None]  # never ran: no record
        if not records:
            print(f"error: job id {args[1]} not found", file=sys.stderr)
            return 1
    for job in records:
        if job.timed_out:
            failed, status = "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137"
        elif job.signal is not None:
            failed, status = "100 : assumedly after job", f"{128 + job.signal}"
        elif job.error:
            failed, status = "1   : assumedly before job", "0"
        else:
            failed, status = "0    ", str(job.exit_code)
        fields = [
            ("qname", job.attrs["queue"]), ("hostname", _HOST), ("group", job.user),
            ("owner", job.user), ("project", job.attrs["project"]),
            ("department", "defaultdepartment"), ("jobname", job.attrs["name"]),
            ("jobnumber", job.number), ("taskid", job.attrs["task"] or "undefined"),
            ("account", job.attrs.get("account", "sge")), ("priority", 0),
            ("qsub_time", time.ctime(job.submit_time)), ("start_time", time.ctime(job.start_time)),
            ("end_time", time.ctime(job.end_time or time.time())), ("granted_pe", "NONE"),
            ("slots", job.attrs["slots"]), ("failed", failed), ("exit_status", status),
            ("ru_wallclock", f"{round((job.end_time or 0) - (job.start_time or 0))}s"),
            ("maxvmem", "0.000B"), ("arid", "undefined"),
            ("category", job.attrs["category"] or "NONE"),
        ]  # fmt: skip
        print("=" * 62)
        for key, value in fields:
            print(f"{key:<13}{value!s:<20}")
    return 0


def qdel(fake: FakeScheduler, args: list[str]) -> int:
    known = {job.id: job for job in fake.queue()}
    failed = 0
    for word in args:
        number, _, task = word.partition(".")
        ids = [word] if task else [jid for jid, j in known.items() if str(j.number) == number]
        ids = [jid for jid in ids if jid in known]
        if not ids:
            print(f'denied: job "{number}" does not exist')
            failed = 1
            continue
        running = any(known[jid].state == "running" for jid in ids)
        fake.cancel(ids)
        what = f"job-array task {word}" if task else f"job {number}"
        if running:
            print(f"{known[ids[0]].user} has registered the {what} for deletion")
        else:
            print(f"{known[ids[0]].user} has deleted {what}")
    return failed


def qconf(fake: FakeScheduler, args: list[str]) -> int:
    if args[:1] != ["-sconf"]:
        print("fake qconf: only -sconf is implemented", file=sys.stderr)
        return 2
    print("#global:")
    settings = {"execd_spool_dir": "/var/spool/gridengine/execd", "min_uid": "0",
                "max_aj_instances": "2000", "max_aj_tasks": "75000", "max_u_jobs": "0"}  # fmt: skip
    for key, value in settings.items():
        print(f"{key:<29}{value}")
    return 0


COMMANDS: Mapping[str, Callable[[FakeScheduler, list[str]], int]] = {
    "qsub": qsub, "qstat": qstat, "qacct": qacct, "qdel": qdel, "qconf": qconf,
}  # fmt: skip


def transient_error(command: str) -> tuple[str, int]:
    return (
        "error: commlib error: got select error (Connection refused)\n"
        f'unable to send message to qmaster using port 6444 on host "{_HOST}": got send error',
        1,
    )

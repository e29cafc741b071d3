"""HTCondor personality of the fake scheduler: condor_submit, condor_q, condor_history,
condor_rm, condor_hold, condor_release.

Submit description files as the ``condor_submit`` manual describes them
(``key = value`` commands, ``+Attr`` / ``MY.Attr`` custom attributes, ``$(macro)``
expansion, ``queue``, ``queue N``, ``queue [N] var[,var] from|in (...)`` or
``from <file>``); output like the real tools (``-terse`` ranges, ``-json`` ClassAd
arrays). Jobs run in their ``initialdir`` (a shared file system: file transfer
is a no-op). A ``periodic_remove`` of the form jobfleet writes for a walltime
(``JobStatus == 2 && time() - EnteredCurrentStatus > N``) is honoured: a job running
longer than ``N`` seconds is removed (SIGTERM, SIGKILL ``kill_grace`` later), ``JobStatus``
3 with the schedd's ``RemoveReason``. The schedd evaluates periodic expressions every
``PERIODIC_EXPR_INTERVAL`` (60 s by default); the fake does at every tick. Other
``periodic_remove`` expressions are not evaluated. See :mod:`fakesched.core` for the interface.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fakesched.core import FakeJob, FakeScheduler, Task, job_environment

__all__ = ["COMMANDS", "DEFAULT_CONFIG", "classads", "parse_submit", "transient_error"]

DEFAULT_CONFIG: Mapping[str, Any] = {"start_failure_holds": True}

_MACRO = re.compile(r"\$(ENV)?\(([A-Za-z_][\w.]*)(?::([^)]*))?\)", re.I)
_UNITS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_RUN_LIMIT = re.compile(
    r"^\s*JobStatus\s*==\s*2\s*&&\s*time\(\)\s*-\s*EnteredCurrentStatus\s*>\s*(\d+)\s*$"
)


class SubmitError(Exception):
    """A submit description condor_submit refuses."""


def _expand(value: str, macros: Mapping[str, str], depth: int = 0) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return os.environ.get(m.group(2), m.group(3) or "")
        found = macros.get(m.group(2).lower())
        return (m.group(3) or "") if found is None else _expand(found, macros, depth + 1)

    return value if depth > 20 else _MACRO.sub(one, value)


def _items(lines: list[str], kind: str, n_vars: int) -> list[list[str]]:
    """Rows of a queue statement's item list (``from``: one row per line; ``in``: one per word)."""
    if kind == "in":
        words = [w for line in lines for w in re.split(r"[\s,]+", line.strip()) if w]
        return [[w] for w in words]
    rows = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p for p in re.split(r"[\s,]+", line.strip(), maxsplit=max(0, n_vars - 1)) if p]
        rows.append(parts)
    return rows


def parse_submit(text: str, cwd: Path) -> list[tuple[dict[str, str], dict[str, str]]]:
    """``[(commands, foreach macros), ...]``: one entry per job, in queue order."""
    commands: dict[str, str] = {}
    custom: dict[str, str] = {}
    jobs: list[tuple[dict[str, str], dict[str, str]]] = []
    lines = iter(text.replace("\\\n", " ").splitlines())
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split(None, 1)
        if head[0].lower() == "queue":
            rest = head[1] if len(head) > 1 else ""
            for foreach in _queue(rest, lines, cwd):
                jobs.append(({**commands, **{f"+{k}": v for k, v in custom.items()}}, foreach))
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SubmitError(f'ERROR: on Line {line!r}: expected "key = value"')
        key, value = key.strip(), value.strip()
        if key.startswith("+") or key.upper().startswith("MY."):
            custom[key.lstrip("+")[3 if key.upper().startswith("MY.") else 0 :]] = value
        else:
            commands[key.lower()] = value
    return jobs


def _queue(rest: str, lines: Iterator[str], cwd: Path) -> list[dict[str, str]]:
    m = re.match(r"^(\d+)?\s*(.*)$", rest.strip())
    assert m is not None
    count, spec = int(m.group(1) or 1), m.group(2).strip()
    if not spec:
        return [{} for _ in range(count)]
    q = re.match(r"^([\w\s,]*?)\s*\b(from|in)\b\s*(.*)$", spec, re.I)
    if q is None:
        raise SubmitError(f"ERROR: unsupported queue statement: queue {rest}")
    names = [n for n in re.split(r"[\s,]+", q.group(1)) if n] or ["Item"]
    kind, source = q.group(2).lower(), q.group(3).strip()
    if source.startswith("("):
        body = source[1:]
        block: list[str] = []
        while ")" not in body:
            block.append(body)
            try:
                body = next(lines)
            except StopIteration:
                raise SubmitError("ERROR: queue item list is not closed with ')'") from None
        block.append(body.split(")", 1)[0])
    else:
        block = (cwd / source).read_text().splitlines()
    foreach = []
    for row in _items(block, kind, len(names)):
        values = dict(zip([n.lower() for n in names], row + [""] * len(names), strict=False))
        foreach.extend(dict(values) for _ in range(count))
    return foreach


def split_arguments(value: str) -> list[str]:
    """The ``arguments`` command: new syntax in double quotes, else old (whitespace) syntax."""
    if not (value.startswith('"') and value.endswith('"') and len(value) >= 2):
        return value.split()
    text, args, current, has, i = value[1:-1].replace('""', "\0"), [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            end = i + 1
            while True:
                end = text.index("'", end)
                if text[end + 1 : end + 2] == "'":
                    current += text[i + 1 : end] + "'"
                    i, end = end + 1, end + 2
                    continue
                current += text[i + 1 : end]
                break
            i, has = end + 1, True
        elif ch.isspace():
            if has:
                args.append(current)
            current, has, i = "", False, i + 1
        else:
            current, has, i = current + ch, True, i + 1
    if has:
        args.append(current)
    return [a.replace("\0", '"') for a in args]


def _megabytes(value: str, default_unit: str = "M") -> int:
    m = re.match(r"^\s*([\d.]+)\s*([KMGT]?)B?\s*$", value, re.I)
    if m is None:
        raise SubmitError(f"ERROR: invalid size {value!r}")
    unit = m.group(2).upper() or default_unit
    return max(1, round(float(m.group(1)) * _UNITS[unit]))


def _literal(value: str) -> Any:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _task(
    commands: dict[str, str], foreach: dict[str, str], submit_dir: Path, cluster: int, proc: int
) -> Task:
    numbers = {"cluster": cluster, "clusterid": cluster, "process": proc, "procid": proc}
    macros = {**commands, **foreach, **{k: str(v) for k, v in numbers.items()}}
    macros.setdefault("step", "0")

    def get(key: str, default: str = "") -> str:
        return _expand(commands.get(key, default), macros)

    universe = get("universe", "vanilla").lower()
    if universe not in ("vanilla", "local"):
        raise SubmitError(f"ERROR: I don't know about the '{universe}' universe.")
    executable = get("executable")
    if not executable:
        raise SubmitError("ERROR: No 'executable' parameter was provided")
    initialdir = submit_dir / get("initialdir", str(submit_dir))
    exe = submit_dir / executable
    if get("transfer_executable", "true").lower() != "false" and not exe.exists():
        raise SubmitError(f"ERROR: Executable file {exe} does not exist")

    def path(key: str) -> str | None:
        value = get(key)
        return str(initialdir / value) if value else None

    inherit = get("getenv", "false").lower() in ("true", "yes", "1")
    env = job_environment(inherit, {"_CONDOR_SCRATCH_DIR": str(initialdir)})
    env.update(dict(kv.split("=", 1) for kv in shlex.split(get("environment").strip('"'))))
    attrs: dict[str, Any] = {k[1:]: _literal(_expand(v, macros)) for k, v in commands.items()
                             if k.startswith("+")}  # fmt: skip
    for key, attr, unit in (("request_cpus", "RequestCpus", None),
                            ("request_gpus", "RequestGpus", None),
                            ("request_memory", "RequestMemory", "M"),
                            ("request_disk", "RequestDisk", "K")):  # fmt: skip
        if get(key):
            attrs[attr] = int(get(key)) if unit is None else _megabytes(get(key), unit)
    if "RequestDisk" in attrs:
        attrs["RequestDisk"] *= 1024  # RequestDisk is in KiB
    attrs.update(
        JobUniverse=5 if universe == "vanilla" else 12,
        Iwd=str(initialdir),
        Cmd=str(exe),
        Args=get("arguments"),
        UserLog=path("log") or "",
        JobBatchName=get("batch_name"),
        AcctGroup=get("accounting_group"),
        StartHeld=get("hold", "false").lower() == "true",
        PeriodicRemove=get("periodic_remove"),
    )
    return Task(
        argv=[str(exe), *split_arguments(get("arguments"))],
        cwd=str(initialdir),
        env=env,
        name=get("batch_name"),
        stdout=path("output"),
        stderr=path("error"),
        stdin=path("input"),
        attrs={k: v for k, v in attrs.items() if v != ""},
        walltime=int(limit.group(1))
        if (limit := _RUN_LIMIT.match(get("periodic_remove")))
        else None,
    )


def condor_submit(fake: FakeScheduler, args: list[str]) -> int:
    terse, source, overrides = False, None, []
    it = iter(args)
    for arg in it:
        if arg in ("-terse", "-t"):
            terse = True
        elif arg in ("-batch-name", "-append", "-a"):
            value = next(it, "")
            overrides.append(f"batch_name = {value}" if arg == "-batch-name" else value)
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        elif arg.startswith("-") and arg != "-":
            print(f"ERROR: unknown option {arg}", file=sys.stderr)
            return 1
        else:
            source = arg
    text = sys.stdin.read() if source in (None, "-") else _read(source)
    if text is None:
        print(f"ERROR: Failed to open command file ({source})", file=sys.stderr)
        return 1
    cwd = Path.cwd()
    try:
        described = parse_submit("\n".join(overrides) + "\n" + text, cwd)
        if not described:
            raise SubmitError("ERROR: no jobs queued")
        jobs = fake.submit(
            lambda cluster: [_task(c, f, cwd, cluster, i) for i, (c, f) in enumerate(described)],
            lambda cluster, proc: f"{cluster}.{proc}",
        )
    except (SubmitError, OSError, ValueError) as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    held = [j.id for j in jobs if j.attrs.get("StartHeld")]
    if held:
        fake.hold(held, "submitted on hold at user's request")
    cluster = jobs[0].number
    if terse:
        print(f"{jobs[0].id} - {jobs[-1].id}")
    else:
        print("Submitting job(s)" + "." * len(jobs))
        print(f"{len(jobs)} job(s) submitted to cluster {cluster}.")
    return 0


def _read(source: str) -> str | None:
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError:
        return None


# -- queries -------------------------------------------------------------------------------------


def _status(job: FakeJob) -> int:
    if job.cancelled or job.timed_out:
        return 3
    return {"queued": 1, "held": 5, "running": 2}.get(job.state, 4)


def classad(job: FakeJob) -> dict[str, Any]:
    """The job's ClassAd as ``condor_q -json`` / ``condor_history -json`` print it."""
    qdate = int(job.submit_time)
    ad: dict[str, Any] = {
        "ClusterId": job.number, "ProcId": job.position, "Owner": job.user,
        "JobStatus": _status(job), "QDate": qdate, "GlobalJobId": f"fakesched#{job.id}#{qdate}",
        "Out": job.stdout or "/dev/null", "Err": job.stderr or "/dev/null",
        "EnteredCurrentStatus": int(job.end_time or job.start_time or job.submit_time),
        **{k: v for k, v in job.attrs.items() if k != "StartHeld"},
    }  # fmt: skip
    if job.start_time:
        ad["JobStartDate"] = int(job.start_time)
    if job.state == "held":
        ad["HoldReason"] = job.hold_reason or ""
        ad["HoldReasonCode"] = 1
    if job.cancelled:
        ad["RemoveReason"] = f"via condor_rm (by user {job.user})"
    elif job.timed_out:
        ad["RemoveReason"] = (
            f"The job attribute PeriodicRemove expression '{job.attrs.get('PeriodicRemove', '')}'"
            " evaluated to TRUE"
        )
    elif not job.active:
        ad["CompletionDate"] = int(job.end_time or 0)
        ad["ExitBySignal"] = job.signal is not None
        if job.signal is not None:
            ad["ExitSignal"] = job.signal
        else:
            ad["ExitCode"] = job.exit_code if job.exit_code is not None else 1
    return ad


def classads(ads: Sequence[Mapping[str, Any]]) -> str:
    """``-json`` output: a JSON array with one pretty-printed object per ad (empty: nothing)."""
    if not ads:
        return ""
    return "[\n" + "\n,\n".join(json.dumps(ad, indent=2, sort_keys=True) for ad in ads) + "\n]\n"


def _constraint(expr: str) -> Callable[[Mapping[str, Any]], bool]:
    """``Attr == value`` terms joined by ``&&`` (enough for job lookups by tag or id)."""
    terms = []
    for term in expr.strip().strip("()").split("&&"):
        m = re.match(r"^\s*\(?\s*(\w+)\s*(==|=\?=)\s*(.+?)\s*\)?\s*$", term)
        if m is None:
            raise ValueError(f"Invalid constraint: {expr}")
        terms.append((m.group(1).lower(), _literal(m.group(3))))

    def match(ad: Mapping[str, Any]) -> bool:
        lowered = {k.lower(): v for k, v in ad.items()}
        return all(lowered.get(name) == value for name, value in terms)

    return match


def _query(fake: FakeScheduler, args: list[str], history: bool) -> int:
    attributes: list[str] | None = None
    ids, checks, limit, as_json = [], [], None, False
    it = iter(args)
    try:
        for arg in it:
            if arg in ("-json",):
                as_json = True
            elif arg in ("-attributes", "-af"):
                attributes = next(it).split(",")
            elif arg in ("-constraint", "-const"):
                checks.append(_constraint(next(it)))
            elif arg in ("-limit", "-match"):
                limit = int(next(it))
            elif arg.startswith("-"):
                continue  # -allusers, -nobatch, -global: nothing to change here
            elif re.match(r"^\d+(\.\d+)?$", arg):
                ids.append(arg)
            else:
                checks.append(lambda ad, owner=arg: ad["Owner"] == owner)
    except (StopIteration, ValueError) as err:
        print(f"Error: {err or 'missing argument'}", file=sys.stderr)
        return 1
    jobs = fake.history() if history else fake.queue()
    if history:
        jobs.reverse()  # newest first, like the history file is read
    ads = [classad(j) for j in jobs]
    if ids:
        ads = [ad for ad in ads if str(ad["ClusterId"]) in ids or
               f"{ad['ClusterId']}.{ad['ProcId']}" in ids]  # fmt: skip
    ads = [ad for ad in ads if all(check(ad) for check in checks)][:limit]
    if attributes is not None:
        ads = [{k: v for k, v in ad.items() if k in attributes} for ad in ads]
    if as_json:
        sys.stdout.write(classads(ads))
    else:
        for ad in ads:
            print(f"{ad.get('ClusterId', '')}.{ad.get('ProcId', '')} {ad.get('JobStatus', '')}")
    return 0


def condor_q(fake: FakeScheduler, args: list[str]) -> int:
    return _query(fake, args, history=False)


def condor_history(fake: FakeScheduler, args: list[str]) -> int:
    return _query(fake, args, history=True)


def _act(
    fake: FakeScheduler, args: list[str], verb: Callable[[list[str]], list[FakeJob]], word: str
) -> int:
    active = fake.queue()
    wanted = [arg for arg in args if not arg.startswith("-")]
    targets = {
        arg: [j.id for j in active if arg in (j.id, str(j.number) if "." not in arg else "")]
        for arg in wanted
    }
    # One call for all: removing some jobs must not let another one start meanwhile.
    done = {j.id for j in verb([jid for ids in targets.values() for jid in ids])}
    error = False
    for arg, ids in targets.items():
        if not ids:
            what = f"job {arg}" if "." in arg else f"cluster {arg}"
            print(f"Couldn't find/{word.split()[0]} all jobs in {what}", file=sys.stderr)
            error = True
        elif "." in arg:
            print(f"Job {arg} {word}" if arg in done else f"Job {arg} not found")
        else:
            print(f"All jobs in cluster {arg} have been {word}")
    return 1 if error else 0


def condor_rm(fake: FakeScheduler, args: list[str]) -> int:
    return _act(fake, args, fake.cancel, "marked for removal")


def condor_hold(fake: FakeScheduler, args: list[str]) -> int:
    return _act(fake, args, lambda ids: fake.hold(ids, f"via condor_hold (by user {_me()})"),
                "held")  # fmt: skip


def condor_release(fake: FakeScheduler, args: list[str]) -> int:
    return _act(fake, args, fake.release, "released")


def _me() -> str:
    import getpass

    return getpass.getuser()


COMMANDS: Mapping[str, Callable[[FakeScheduler, list[str]], int]] = {
    "condor_submit": condor_submit,
    "condor_q": condor_q,
    "condor_history": condor_history,
    "condor_rm": condor_rm,
    "condor_hold": condor_hold,
    "condor_release": condor_release,
}


def transient_error(command: str) -> tuple[str, int]:
    """What the tools print when the schedd does not answer in time."""
    if command in ("condor_q", "condor_history"):
        return (
            "\n-- Failed to fetch ads from: <127.0.0.1:9618?addrs=127.0.0.1-9618> : fakesched\n"
            "SECMAN:2007:Failed to end classad message.",
            1,
        )
    return ("\nERROR: Failed to connect to local queue manager\n"
            "SECMAN:2007:Failed to end classad message.", 1)  # fmt: skip

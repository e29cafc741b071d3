"""Grid Engine (Son of Grid Engine, Univa/Altair GE): ``qsub -terse -t`` arrays, one
``qstat -xml`` per poll, ``qacct -j`` for the jobs that left the queue.

Pure functions and argv builders only; running and polling live in
:class:`~jobfleet.backends.batch.BatchBackend`. Output formats are those of SGE 8.1.9
(recorded in ``tests/backends/data/sge``); state letters and ``failed`` codes follow
``sge_status(5)``.
"""

from __future__ import annotations

import getpass
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.native import ArrayChunk, NativeState
from jobfleet.commands import CommandResult
from jobfleet.errors import BackendError, CommandError, SpecError
from jobfleet.job import Job, SubJob
from jobfleet.status import JobStatus

__all__ = [
    "SGE_FAILED",
    "GridEngine",
    "expand_task_ranges",
    "format_hms",
    "parse_qacct",
    "parse_qconf",
    "sge_state",
]

log = logging.getLogger("jobfleet.backends.sge")

#: ``qacct``'s ``failed`` codes that have a reason of their own (``sge_status(5)``); others
#: are described by qacct's own text.
SGE_FAILED: Mapping[int, str] = {
    1: "could not start (failed in execd before the job)",
    26: "could not open its output file",
    27: "shell not found",
    28: "could not change to its working directory",
    37: "limit exceeded (h_rt, h_cpu or h_vmem)",
}
# qdel answers for ids that already finished; not a failure of the cancel itself
_GONE = re.compile(r'^denied: job "[^"]+" does not exist$')
_DELETED = re.compile(r"has (registered the job|deleted job)")
_TASKS = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
_SIZE = re.compile(r"^([\d.]+)([KMGT]?)B?$", re.I)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def format_hms(seconds: int) -> str:
    """Seconds as Grid Engine's ``H:MM:SS`` (hours may exceed 24)."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def expand_task_ranges(text: str) -> list[int]:
    """``qstat``'s task list: ``"9-20:1"``, ``"1,3,4,6"`` or ``"2"`` -> task ids."""
    ids: list[int] = []
    for part in text.split(","):
        match = _TASKS.match(part.strip())
        if not match:
            continue
        first = int(match.group(1))
        last = int(match.group(2) or first)
        ids.extend(range(first, last + 1, int(match.group(3) or 1)))
    return ids


def sge_state(word: str) -> NativeState:
    """A ``qstat`` state (``qw``, ``hqw``, ``r``, ``Rr``, ``dr``, ``Eqw``, ``s``...)."""
    if "E" in word:
        # The job stays in the queue in error state until someone clears (qmod -cj) or
        # deletes it; for jobfleet it has failed.
        return NativeState(JobStatus.failed, word, None, f"error state ({word})")
    requeued = "R" in word
    if any(c in word for c in "rtsST"):
        return NativeState(JobStatus.running, word, requeued=requeued)
    return NativeState(JobStatus.submitted, word, requeued=requeued)


def parse_qconf(stdout: str) -> dict[str, str]:
    """``qconf -sconf`` as ``{key: value}`` (continuation lines joined)."""
    config: dict[str, str] = {}
    key = ""
    for line in stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and key:
            config[key] = (config[key].rstrip("\\ ") + " " + line.strip()).strip()
            continue
        key, _, value = line.partition(" ")
        config[key] = value.strip()
    return config


def _size_bytes(text: str) -> float | None:
    match = _SIZE.match(text.strip())
    return float(match.group(1)) * _UNITS[match.group(2).upper()] if match else None


def _seconds(text: str) -> float | None:
    text = text.strip().rstrip("s")
    if ":" in text:
        total = 0.0
        for part in text.split(":"):
            total = total * 60 + float(part or 0)
        return total
    try:
        return float(text)
    except ValueError:
        return None


def _limit_reason(record: Mapping[str, str]) -> str:
    """Which limit a ``failed 37`` job hit, from its requests (``category``) and usage."""
    requests = dict(re.findall(r"(h_rt|h_cpu|h_vmem)=(\S+?)(?:,|\s|$)", record.get("category", "")))
    used_wall = _seconds(record.get("ru_wallclock", ""))
    if "h_rt" in requests:
        limit = _seconds(requests["h_rt"])
        if limit is not None and used_wall is not None and used_wall >= limit:
            return "timeout"
    if "h_vmem" in requests:
        limit, used = _size_bytes(requests["h_vmem"]), _size_bytes(record.get("maxvmem", ""))
        if limit is not None and used is not None and used >= limit:
            return "out of memory"
    if set(requests) == {"h_rt"}:
        return "timeout"
    return SGE_FAILED[37]


def parse_qacct(stdout: str) -> dict[str, NativeState]:
    """``qacct -j`` records -> ``{native_id: state}``; a later record (a rerun) wins."""
    states: dict[str, NativeState] = {}
    for block in re.split(r"^={10,}\s*$", stdout, flags=re.M):
        record: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.strip().partition(" ")
            if key:
                record[key] = value.strip()
        if "jobnumber" not in record:
            continue
        task = record.get("taskid", "undefined")
        native_id = record["jobnumber"] + ("" if task in ("undefined", "") else f".{task}")
        failed_text = record.get("failed", "0")
        failed = int(failed_text.split()[0]) if failed_text.split()[0].isdigit() else 0
        try:
            exit_code: int | None = int(record.get("exit_status", "").split()[0])
        except (ValueError, IndexError):
            exit_code = None
        if failed == 0 and exit_code == 0:
            states[native_id] = NativeState(JobStatus.completed, "finished", 0)
            continue
        reason: str | None = None
        if failed == 37:
            reason = _limit_reason(record)
        elif failed and failed != 100:  # 100: killed by a signal, told by the exit code
            described = failed_text.partition(":")[2].strip()
            reason = SGE_FAILED.get(failed) or f"failed {failed}: {described or 'unknown'}"
        states[native_id] = NativeState(JobStatus.failed, "finished", exit_code, reason)
    return states


def _parse_context(stdout: str, tag: str) -> str | None:
    job = None
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "job_number":
            job = value.strip()
        elif key.strip() == "context" and f"jobfleet={tag}" in value.replace(" ", "").split(","):
            return job
    return None


class GridEngine(BatchBackend):
    """Submit to Grid Engine with ``qsub`` (subjobs as task arrays), follow with
    ``qstat -xml`` and ``qacct``.

    ``backend_args``: the portable resources (``cores`` -> ``-pe <pe> N``, ``memory`` ->
    ``h_vmem`` per slot, ``walltime`` -> ``h_rt``, ``queue``, ``account`` -> ``-P``
    project, ``gpus`` -> ``-l gpu=N``, ``job_name``, ``extra_directives``),
    ``parallel_environment`` (default ``smp``), ``max_array_size`` (skips asking
    ``qconf``), ``accounting`` (``False``: never run ``qacct``; finished units are then
    settled by their exit code files alone, without the scheduler's reason), ``user``
    (whose jobs ``qstat`` lists; default: this user), ``global_job_limit``,
    ``exit_code_grace``, ``min_poll_interval``.
    """

    name = "sge"
    array_index_base: ClassVar[int] = 1
    known_options: ClassVar[frozenset[str]] = BatchBackend.known_options | {
        "accounting", "max_array_size", "parallel_environment", "user"
    }  # fmt: skip
    poll_options: ClassVar[frozenset[str]] = BatchBackend.poll_options | {"user", "accounting"}
    unknown_ids_error = re.compile(r"job id \S+ not found")
    transient_errors = re.compile(
        r"commlib error|unable to contact qmaster|unable to send message to qmaster|"
        r"failed receiving gdi request|Connection refused|timed out|try again",
        re.I,
    )

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(backend_args=backend_args)
        self._config: dict[str, str] | None = None
        self.user = str(self.backend_args.get("user") or getpass.getuser())

    # -- cluster facts (asked once) ------------------------------------------------------------

    def config(self) -> dict[str, str]:
        if self._config is None:
            self._config = parse_qconf(self.run(["qconf", "-sconf"]).stdout)
        return self._config

    def max_array_size(self) -> int:
        configured = self.backend_args.get("max_array_size")
        if configured is not None:
            return int(configured)
        tasks = int(self.config().get("max_aj_tasks", "75000") or 0)
        return (tasks if tasks > 0 else 75000) + 1  # indices 1..max_aj_tasks

    # -- text and argv -------------------------------------------------------------------------

    def check_job(self, job: Job) -> None:
        self.directives(job)

    def directives(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]:
        res = self.resources_for(job, array=array)
        name = self.job_name(job, res, array)
        options = ["-S /bin/bash", f"-N {name}"]
        if res.queue is not None:
            options.append(f"-q {res.queue}")
        if res.account is not None:
            options.append(f"-P {res.account}")
        if res.nodes is not None and res.nodes > 1:
            raise SpecError(
                f"{job!r}: Grid Engine has no node count; ask for slots with 'cores' or use "
                "'extra_directives' with a parallel environment of your site"
            )
        slots = res.cores or 1
        if res.cores is not None:
            pe = str(self.backend_args.get("parallel_environment", "smp"))
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", pe):
                raise SpecError(f"backend_args: 'parallel_environment': {pe!r} is not a name")
            options.append(f"-pe {pe} {res.cores}")
        if res.memory_mb is not None:  # h_vmem is per slot
            options.append(f"-l h_vmem={math.ceil(res.memory_mb / slots)}M")
        if res.walltime_s is not None:
            options.append(f"-l h_rt={format_hms(res.walltime_s)}")
        if res.gpus:
            options.append(f"-l gpu={res.gpus}")
        return [f"#$ {option}" for option in [*options, *res.extra_directives]]

    def array_task_variable(self) -> str:
        return "SGE_TASK_ID"

    def _chunks(self, owner: Job, subjobs: list[SubJob]) -> list[ArrayChunk]:
        # qsub -t takes one range (n-m), not a list: split at gaps (a resubmitted subset)
        chunks = []
        for chunk in super()._chunks(owner, subjobs):
            run: list[SubJob] = []
            for unit in chunk.units:
                if run and unit.id != run[-1].id + 1:
                    chunks.append(ArrayChunk(owner, tuple(run), chunk.offset))
                    run = []
                run.append(unit)
            chunks.append(ArrayChunk(owner, tuple(run), chunk.offset))
        return chunks

    def submit_command(
        self, script: Path, *, tag: str, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> list[str]:
        # the tag twice: as context for qstat -j, as account string for qacct (context is
        # not accounted, and a short job may have ended before a lookup)
        argv = ["qsub", "-terse", "-ac", f"jobfleet={tag}", "-A", f"jobfleet-{tag}"]
        if self.inherits_env(unit=unit, array=array):
            argv.append("-V")  # without it a job gets a minimal environment, not ours
        if array is not None:
            wd = array.owner.working_dir
            logs = wd / "sge-logs"
            logs.mkdir(exist_ok=True)
            first, last = min(array.indices), max(array.indices)
            argv += ["-t", f"{first}-{last}", "-wd", str(wd), "-o", f"{logs}/", "-e", f"{logs}/"]
        elif unit is not None:
            wd = unit.working_dir
            argv += ["-wd", str(wd), "-o", f"{wd}/stdout", "-e", f"{wd}/stderr"]
        return [*argv, str(script)]

    def job_id_from_submit_output(self, stdout: str) -> str:
        job_id = stdout.strip().split(".")[0]
        if not job_id.isdigit():
            raise BackendError(f"qsub printed {stdout.strip()[:200]!r}, not a job id")
        return job_id

    def array_task_id(self, array_id: str, index: int) -> str:
        return f"{array_id}.{index}"

    def status_command(self, native_ids: Sequence[str]) -> list[str]:
        # qstat lists jobs by user, not by id: one call covers every active unit
        return ["qstat", "-xml", "-u", self.user]

    def parse_status_output(self, stdout: str) -> dict[str, NativeState]:
        states: dict[str, NativeState] = {}
        if not stdout.strip():
            return states
        try:
            root = ET.fromstring(stdout)
        except ET.ParseError as err:
            raise BackendError(f"qstat -xml printed unreadable XML: {err}") from None
        for entry in root.iter("job_list"):
            number = (entry.findtext("JB_job_number") or "").strip()
            if not number:
                continue
            state = sge_state((entry.findtext("state") or "").strip())
            tasks = (entry.findtext("tasks") or "").strip()
            if not tasks:
                states[number] = state
            for task in expand_task_ranges(tasks) if tasks else []:
                states[f"{number}.{task}"] = state
        return states

    def history_command(self, native_ids: Sequence[str]) -> list[str] | None:
        if not self.backend_args.get("accounting", True):
            return None  # exit code files only (qacct can be slow on a large accounting file)
        # qacct takes one job id per call: ask about the job most of these units belong
        # to; the others are asked about on later polls (or settled by exit code files)
        counts = Counter(nid.split(".")[0] for nid in native_ids)
        job, _ = min(counts.items(), key=lambda item: (-item[1], int(item[0])))
        return ["qacct", "-j", job]

    def parse_history_output(self, stdout: str) -> dict[str, NativeState]:
        return parse_qacct(stdout)

    def cancel_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["qdel", *native_ids]  # "123.4" names one task of array 123

    def tag_query_command(self, tag: str) -> list[str] | None:
        return ["qstat", "-j", "*"]

    def parse_tag_query_output(self, stdout: str, tag: str) -> str | None:
        return _parse_context(stdout, tag)

    def tag_history_command(self, tag: str) -> list[str] | None:
        if not self.backend_args.get("accounting", True):
            return None
        return ["qacct", "-A", f"jobfleet-{tag}", "-j"]

    def parse_tag_history_output(self, stdout: str, tag: str) -> str | None:
        job = None
        for line in stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "jobnumber":
                job = value.strip()
            elif key == "account" and value.strip() == f"jobfleet-{tag}":
                return job
        return None

    def active_count_command(self) -> list[str] | None:
        return ["qstat", "-xml", "-g", "d", "-u", self.user]

    def parse_active_count(self, stdout: str) -> int:
        return len(self.parse_status_output(stdout))

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        """Run a command; answers that only say "nothing of that kind exists" are not errors.

        ``qdel`` exits 1 when one of its ids already finished, though it deleted the
        others; ``qstat -j '*'`` exits 1 when the user has no job at all.
        """
        try:
            return super().run(argv, **kwargs)
        except CommandError as err:
            if argv[:1] == ["qsub"] and err.stderr.rstrip().endswith("Exiting."):
                # the reason is the line before qsub's closing "Exiting."
                said = err.stderr.rstrip().removesuffix("Exiting.")
                raise CommandError(
                    argv, err.returncode, err.stdout, said, transient=err.transient
                ) from err
            lines = [ln.strip() for ln in (err.stdout + err.stderr).splitlines() if ln.strip()]
            if (
                argv[:1] == ["qdel"]
                and lines
                and all(_GONE.match(ln) or _DELETED.search(ln) for ln in lines)
            ):
                log.info("qdel: some ids had already left the queue: %s", lines[:3])
                return CommandResult(tuple(argv), err.returncode or 1, err.stdout, err.stderr, 0)
            if list(argv[:2]) == ["qstat", "-j"] and lines[:1] == ["Following jobs do not exist:"]:
                return CommandResult(tuple(argv), err.returncode or 1, "", err.stderr, 0)
            raise

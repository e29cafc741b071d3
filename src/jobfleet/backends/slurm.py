"""Slurm: ``sbatch`` job arrays, one ``squeue`` per poll, ``sacct`` for the jobs it forgot.

Pure functions and argv builders only; running and polling live in
:class:`~jobfleet.backends.batch.BatchBackend`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.native import ArrayChunk, NativeState, compress_indices
from jobfleet.errors import BackendError
from jobfleet.job import Job
from jobfleet.resources import resources_from_args
from jobfleet.status import JobStatus

__all__ = [
    "SLURM_STATES",
    "Slurm",
    "expand_array_id",
    "format_walltime",
    "parse_config",
    "parse_exit_code",
    "parse_raw_wait_status",
]

_S, _R, _F, _C = JobStatus.submitted, JobStatus.running, JobStatus.failed, JobStatus.completed

#: Slurm job states -> (jobfleet status, failure reason); see ``squeue --help`` / JOB STATE CODES.
SLURM_STATES: Mapping[str, tuple[JobStatus, str | None]] = {
    "PENDING": (_S, None), "CONFIGURING": (_S, None), "REQUEUED": (_S, None),
    "REQUEUE_FED": (_S, None), "REQUEUE_HOLD": (_S, None), "RESV_DEL_HOLD": (_S, None),
    "SPECIAL_EXIT": (_S, None), "RESIZING": (_R, None),
    "RUNNING": (_R, None), "COMPLETING": (_R, None), "SUSPENDED": (_R, None),
    "STOPPED": (_R, None), "SIGNALING": (_R, None), "STAGE_OUT": (_R, None),
    "COMPLETED": (_C, None),
    "FAILED": (_F, None), "TIMEOUT": (_F, "timeout"), "OUT_OF_MEMORY": (_F, "out of memory"),
    "NODE_FAIL": (_F, "node failure"), "BOOT_FAIL": (_F, "node failure (boot)"),
    "DEADLINE": (_F, "deadline reached"), "CANCELLED": (_F, "cancelled"),
    "PREEMPTED": (_F, "preempted"), "REVOKED": (_F, "revoked"),
}  # fmt: skip
_REQUEUED = frozenset({"REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT"})
# One line per array task: id as "123_4" (or "123"), ..., state, reason, raw wait status.
_STATUS_FORMAT = (
    "JobArrayID:|,JobID:|,ArrayJobID:|,ArrayTaskID:|,StateCompact:|,State:|,Reason:|,exit_code:"
)


_HISTORY_FORMAT = "JobID,JobIDRaw,State,ExitCode,Start,End,Elapsed,Reason"
#: How far back ``sacct`` looks for a submission by its tag: a ``submit --resume`` days
#: after the crash still finds jobs that left ``squeue`` long ago.
_TAG_HISTORY_SINCE = "now-14days"
#: ``sacct`` keeps each job's ``sbatch`` command line (with the tag) from this version on.
_SUBMIT_LINE_SINCE = (21, 8)


def format_walltime(seconds: int) -> str:
    """Seconds as Slurm's ``D-HH:MM:SS``."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def parse_config(stdout: str) -> dict[str, str]:
    """``scontrol show config`` as ``{key: value}``."""
    config = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


def parse_raw_wait_status(text: str) -> int | None:
    """``squeue -O exit_code`` prints a raw wait status: 768 is exit 3, 15 is SIGTERM (143)."""
    try:
        raw = int(text)
    except ValueError:
        return None
    signal_number = raw & 0x7F
    return 128 + signal_number if signal_number else raw >> 8


def parse_exit_code(text: str) -> int | None:
    """``sacct``'s ``ExitCode`` ``code:signal``: ``3:0`` is 3, ``0:15`` is 143."""
    code, _, sig = text.partition(":")
    try:
        number, signal_number = int(code), int(sig or 0)
    except ValueError:
        return None
    return 128 + signal_number if signal_number else number


_PENDING_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")


def expand_array_id(job_id: str) -> list[str]:
    """``123_[4-6,9%2]`` (pending tasks, as squeue prints them without ``--array``) ->
    ``["123_4", "123_5", "123_6", "123_9"]``; any other id is returned as it is."""
    match = _PENDING_RANGE.match(job_id)
    if not match:
        return [job_id]
    array, ranges = match.groups()
    ids = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        ids += [f"{array}_{i}" for i in range(int(first), int(last or first) + 1)]
    return ids


def _state(word: str, exit_code: int | None) -> NativeState:
    status, reason = SLURM_STATES.get(word, (JobStatus.running, None))
    return NativeState(status, word, exit_code, reason, requeued=word in _REQUEUED)


class Slurm(BatchBackend):
    """Submit to Slurm with ``sbatch`` (subjobs as job arrays), follow with ``squeue``/``sacct``.

    ``backend_args``: the portable resources (``cores``, ``memory``, ``walltime``,
    ``queue``, ``account``, ``gpus``, ``nodes``, ``job_name``,
    ``extra_directives``), ``array_limit`` (tasks of one array running at
    once, ``%N``), ``global_job_limit``, ``exit_code_grace``, ``min_poll_interval``.
    """

    name = "slurm"
    unknown_ids_error = re.compile(r"Invalid job id specified")
    transient_errors = re.compile(
        r"Socket timed out|temporarily unable|Unable to contact slurm controller|"
        r"Connection refused|Resource temporarily unavailable|Zero Bytes were transmitted|"
        r"Transport endpoint is not connected|try again",
        re.I,
    )
    default_global_job_limit: ClassVar[int] = 10_000
    known_options: ClassVar[frozenset[str]] = BatchBackend.known_options | {"array_limit"}

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(backend_args=backend_args)
        self._config: dict[str, str] | None = None

    # -- cluster facts (asked once) ------------------------------------------------------------

    def config(self) -> dict[str, str]:
        if self._config is None:
            self._config = parse_config(self.run(["scontrol", "show", "config"]).stdout)
        return self._config

    def max_array_size(self) -> int:
        return int(self.config().get("MaxArraySize", "1001"))

    def has_accounting(self) -> bool:
        storage = self.config().get("AccountingStorageType", "")
        return bool(storage) and not storage.endswith("/none")

    # -- text and argv -------------------------------------------------------------------------

    def check_job(self, job: Job) -> None:
        resources_from_args(self.job_backend_args(job))

    def directives(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]:
        res = self.resources_for(job, array=array)
        name = self.job_name(job, res, array)
        options = [f"--job-name={name}"]
        if res.cores is not None:
            options.append(f"--cpus-per-task={res.cores}")
        if res.memory_mb is not None:
            options.append(f"--mem={res.memory_mb}M")
        if res.walltime_s is not None:
            options.append(f"--time={format_walltime(res.walltime_s)}")
        for flag, value in (("partition", res.queue), ("account", res.account)):
            if value is not None:
                options.append(f"--{flag}={value}")
        if res.gpus:
            options.append(f"--gpus={res.gpus}")
        if res.nodes is not None:
            options.append(f"--nodes={res.nodes}")
        return [f"#SBATCH {option}" for option in [*options, *res.extra_directives]]

    def array_task_variable(self) -> str:
        return "SLURM_ARRAY_TASK_ID"

    def submit_command(
        self, script: Path, *, tag: str, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> list[str]:
        # Like every backend: the submitting environment only when asked for it
        # (NONE gives the user's login environment on the node, plus SLURM_*).
        export = "ALL" if self.inherits_env(unit=unit, array=array) else "NONE"
        argv = ["sbatch", "--parsable", f"--comment=jobfleet:{tag}", f"--export={export}"]
        if array is not None:
            limit = self.backend_args.get("array_limit")
            spec = compress_indices(array.indices) + (f"%{int(limit)}" if limit else "")
            logs = array.owner.working_dir / "slurm-logs"
            logs.mkdir(exist_ok=True)
            argv += [f"--array={spec}", f"--chdir={array.owner.working_dir}",
                     f"--output={logs}/%A_%a.log"]  # fmt: skip
        elif unit is not None:
            wd = unit.working_dir
            argv += [f"--chdir={wd}", f"--output={wd}/stdout", f"--error={wd}/stderr"]
        return [*argv, str(script)]

    def job_id_from_submit_output(self, stdout: str) -> str:
        job_id = stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch printed {stdout.strip()[:200]!r}, not a job id")
        return job_id

    def array_task_id(self, array_id: str, index: int) -> str:
        return f"{array_id}_{index}"

    def status_command(self, native_ids: Sequence[str]) -> list[str]:
        jobs = sorted({nid.split("_")[0] for nid in native_ids}, key=int)
        return ["squeue", "--noheader", "--array", "--states=all",
                f"--Format={_STATUS_FORMAT}", f"--jobs={','.join(jobs)}"]  # fmt: skip

    def parse_status_output(self, stdout: str) -> dict[str, NativeState]:
        states = {}
        # Thousands of tasks share a handful of (state, exit status) pairs: one
        # (immutable) NativeState each, so a 10,000-line answer costs little per line.
        seen: dict[tuple[str, str], NativeState] = {}
        for line in stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) < 8 or not fields[0]:
                continue
            key = (fields[5], fields[7])
            state = seen.get(key)
            if state is None:
                word = fields[5].split()[0] if fields[5].strip() else ""
                state = seen[key] = _state(word, parse_raw_wait_status(fields[7]))
            if "[" in fields[0]:
                for native_id in expand_array_id(fields[0]):
                    states[native_id] = state
            else:
                states[fields[0]] = state
        return states

    def history_command(self, native_ids: Sequence[str]) -> list[str] | None:
        if not self.has_accounting():
            return None
        return ["sacct", "--noheader", "--parsable2", "--allocations",
                f"--format={_HISTORY_FORMAT}", f"--jobs={','.join(native_ids)}"]  # fmt: skip

    def parse_history_output(self, stdout: str) -> dict[str, NativeState]:
        states = {}
        for line in stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) < 4 or not fields[0] or "." in fields[0]:
                continue  # job steps ("123.batch") repeat their job
            word = fields[2].split()[0] if fields[2].strip() else ""  # "CANCELLED by 0"
            states[fields[0]] = _state(word, parse_exit_code(fields[3]))
        return states

    def cancel_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["scancel", *native_ids]

    def tag_query_command(self, tag: str) -> list[str] | None:
        return ["squeue", "--noheader", "--me", "--states=all", "--format=%F|%k"]

    def parse_tag_query_output(self, stdout: str, tag: str) -> str | None:
        for line in stdout.splitlines():
            job_id, _, comment = line.strip().partition("|")
            if comment.strip() == f"jobfleet:{tag}":
                return job_id.strip()
        return None

    def tag_history_command(self, tag: str) -> list[str] | None:
        # The Comment field itself reaches accounting only with AccountingStoreFlags=
        # job_comment; the submit line, which holds it too, is always kept. A time window
        # leaves out jobs still pending, but the queue query (squeue) lists those.
        if not self.has_accounting() or _version(self.config()) < _SUBMIT_LINE_SINCE:
            return None
        return ["sacct", "--noheader", "--parsable2", "--allocations",
                f"--starttime={_TAG_HISTORY_SINCE}", "--format=JobID,SubmitLine"]  # fmt: skip

    def parse_tag_history_output(self, stdout: str, tag: str) -> str | None:
        wanted = f"--comment=jobfleet:{tag}"
        for line in stdout.splitlines():
            job_id, _, submit_line = line.strip().partition("|")
            if wanted in submit_line.split():
                return job_id.split("_")[0]  # an array task ("123_4"): its array's id
        return None

    def active_count_command(self) -> list[str] | None:
        return ["squeue", "--noheader", "--me", "--array", "--format=%i"]


def _version(config: dict[str, str]) -> tuple[int, int]:
    """``(major, minor)`` of ``SLURM_VERSION`` in ``scontrol show config``; (0, 0) if unknown."""
    parts = config.get("SLURM_VERSION", "").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0

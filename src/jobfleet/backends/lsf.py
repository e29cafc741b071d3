"""IBM Spectrum LSF: ``bsub`` job arrays, one ``bjobs -json`` per poll, the exit code file
for jobs LSF no longer shows.

Every option goes on the ``bsub`` command line (LSF reads ``#BSUB`` lines only from a
script given on stdin, or with ``LSB_BSUB_PARSE_SCRIPT=Y``; ``run_command`` gives
commands no stdin); the submitted scripts repeat them as ``#BSUB`` lines so that
``bsub < script`` would do the same. Array indices count from 1
(``$LSB_JOBINDEX``); native ids are ``123`` or ``123[4]``.

Pure functions and argv builders only; running and polling live in
:class:`~jobfleet.backends.batch.BatchBackend`.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jobfleet.backends.base import owner_of
from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.native import ArrayChunk, NativeState, compress_indices
from jobfleet.commands import CommandResult
from jobfleet.errors import BackendError, CommandError, SpecError
from jobfleet.job import Job
from jobfleet.resources import Resources, resources_from_args, scheduler_name
from jobfleet.status import JobStatus
from jobfleet.templating import render
from jobfleet.workdir import render_wrapper

__all__ = [
    "LSF",
    "LSF_STATES",
    "parse_bjobs_json",
    "parse_bsub_output",
    "reason_from_exit_reason",
    "state_from_record",
]

log = logging.getLogger("jobfleet.backends.lsf")

_S, _R, _F, _C = JobStatus.submitted, JobStatus.running, JobStatus.failed, JobStatus.completed
#: ``bjobs`` STAT values (LSF "Job states"): pending, running, suspended and ended ones.
LSF_STATES: Mapping[str, JobStatus] = {
    "PEND": _S, "WAIT": _S, "PROV": _S, "PSUSP": _S,
    "RUN": _R, "USUSP": _R, "SSUSP": _R, "UNKWN": _R,
    "DONE": _C, "EXIT": _F, "ZOMBI": _F,
}  # fmt: skip
#: ``EXIT_REASON`` prefixes (``TERM_*`` termination reasons) worth naming.
_TERM_REASONS = {
    "TERM_OWNER": "cancelled", "TERM_ADMIN": "cancelled", "TERM_FORCE_OWNER": "cancelled",
    "TERM_FORCE_ADMIN": "cancelled", "TERM_RUNLIMIT": "timeout", "TERM_MEMLIMIT": "out of memory",
    "TERM_CPULIMIT": "cpu time limit", "TERM_PREEMPT": "preempted",
    "TERM_REQUEUE_OWNER": "requeued",
}  # fmt: skip
_FIELDS = "jobid jobindex stat exit_code exit_reason"
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
#: bkill / bjobs complaints that only mean "that job has ended or is gone".
_GONE = re.compile(
    r"already finished|No matching job found|is not found|is being terminated|"
    r"No unfinished job found|No job found",
    re.I,
)


def parse_bsub_output(stdout: str) -> str:
    """``Job <123> is submitted to queue <normal>.`` -> ``"123"``."""
    m = _SUBMITTED.search(stdout)
    if m is None:
        raise BackendError(f"bsub printed {stdout.strip()[:200]!r}, not a job id")
    return m.group(1)


def parse_bjobs_json(stdout: str) -> list[dict[str, str]]:
    """The ``RECORDS`` of ``bjobs -o ... -json`` (``ERROR`` records included)."""
    if not stdout.strip():
        return []
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as err:
        raise BackendError(f"bjobs printed something that is not JSON: {err}") from None
    records = document.get("RECORDS", []) if isinstance(document, dict) else []
    return [r for r in records if isinstance(r, dict)]


def reason_from_exit_reason(text: str) -> str | None:
    """``"TERM_OWNER: job killed by owner"`` -> ``"cancelled"``; ``None`` when not telling."""
    return _TERM_REASONS.get(text.split(":")[0].strip()) if text else None


def _native_id(record: Mapping[str, str]) -> str:
    index = str(record.get("JOBINDEX", "")).strip()
    job_id = str(record["JOBID"])
    return f"{job_id}[{index}]" if index not in ("", "0") else job_id


def state_from_record(record: Mapping[str, str]) -> NativeState:
    """One ``bjobs -json`` record's ``STAT``, ``EXIT_CODE`` and ``EXIT_REASON``."""
    word = str(record.get("STAT", "")).strip()
    status = LSF_STATES.get(word, JobStatus.running)
    code_text = str(record.get("EXIT_CODE", "")).strip()
    exit_code = int(code_text) if code_text.isdigit() else (0 if word == "DONE" else None)
    reason = reason_from_exit_reason(str(record.get("EXIT_REASON", "")))
    return NativeState(status, word, exit_code, reason if status is _F else None)


class LSF(BatchBackend):
    """Submit to LSF with ``bsub`` (subjobs as job arrays), follow with ``bjobs -json``.

    ``backend_args``: the portable resources (``cores`` -> ``-n``, ``memory`` ->
    ``-M <MB>MB``, ``walltime`` -> ``-W H:MM``, ``queue`` -> ``-q``, ``account`` ->
    ``-P``, ``gpus`` -> ``-gpu num=N``, ``job_name`` -> ``-J``, ``extra_directives``:
    more bsub options, e.g. ``"-R select[type==X86_64]"``), ``array_limit``
    (elements running at once, ``%N``), ``max_array_size`` (the cluster's
    ``MAX_JOB_ARRAY_SIZE``, 1000), ``inherit_env`` (``-env all`` instead of
    ``-env none``), ``global_job_limit``, ``exit_code_grace``, ``min_poll_interval``.
    """

    name = "lsf"
    array_index_base: ClassVar[int] = 1
    transient_errors = re.compile(
        r"Communication time out|Please wait|LSF is down|not responding|"
        r"Failed in an LSF library call|timed out|try again|Connection refused",
        re.I,
    )
    default_global_job_limit: ClassVar[int] = 15_000
    #: Launcher of a job without subjobs, in its working directory.
    job_file_name: ClassVar[str] = "lsf_job.sh"
    known_options: ClassVar[frozenset[str]] = BatchBackend.known_options | {
        "array_limit", "max_array_size"
    }  # fmt: skip

    # -- text and argv -------------------------------------------------------------------------

    def max_array_size(self) -> int:
        return int(self.backend_args.get("max_array_size", 1000)) + 1

    def check_job(self, job: Job) -> None:
        self._options(job, None)

    def _resources(self, job: Job) -> Resources:
        res = resources_from_args(self.job_backend_args(job))
        if res.nodes is not None and res.nodes > 1:
            raise SpecError("backend_args: field 'nodes': use extra_directives (-R span[...])")
        return res

    def _options(self, job: Job, array: ArrayChunk | None) -> list[list[str]]:
        """bsub options of ``job`` (``array``: with the array spec in ``-J``), as token lists."""
        res = self._resources(job)
        name = res.job_name or scheduler_name(owner_of(job).name)
        if array is not None:
            limit = self.backend_args.get("array_limit")
            name = f"{name}[{compress_indices(array.indices)}]" + (
                f"%{int(limit)}" if limit else ""
            )
        options = [["-J", name]]
        if res.queue is not None:
            options.append(["-q", res.queue])
        if res.cores is not None:
            options.append(["-n", str(res.cores)])
            if res.cores > 1:
                options.append(["-R", "span[hosts=1]"])
        if res.memory_mb is not None:
            options.append(["-M", f"{res.memory_mb}MB"])
        if res.walltime_s is not None:
            minutes = -(-res.walltime_s // 60)
            options.append(["-W", f"{minutes // 60}:{minutes % 60:02d}"])
        if res.account is not None:
            options.append(["-P", res.account])
        if res.gpus:
            options.append(["-gpu", f"num={res.gpus}"])
        for line in res.extra_directives:
            try:
                tokens = shlex.split(line)
            except ValueError as err:
                raise SpecError(
                    f"backend_args: field 'extra_directives': {line!r}: {err}"
                ) from None
            if not tokens or not tokens[0].startswith("-"):
                raise SpecError(f"backend_args: field 'extra_directives': {line!r} is no option")
            options.append(tokens)
        return options

    def _io_options(self, job: Job, array: ArrayChunk | None) -> list[list[str]]:
        """Where LSF runs the launcher and puts its report: never the unit's own stdout."""
        if array is not None:
            logs = array.owner.working_dir / "lsf-logs"
            return [["-cwd", str(array.owner.working_dir)], ["-o", f"{logs}/%J_%I.log"]]
        return [["-cwd", str(job.working_dir)], ["-o", str(job.working_dir / "lsf.log")]]

    def directives(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]:
        options = self._options(job, array) + self._io_options(job, array)
        return [f"#BSUB {shlex.join(tokens)}" for tokens in options]

    def render_script(self, unit: Job) -> str:
        return render_wrapper(unit)  # the options live in the launcher and on the command line

    def array_task_variable(self) -> str:
        return "LSB_JOBINDEX"

    def render_job_script(self, unit: Job) -> str:
        """The launcher of a job without subjobs."""
        return render(
            "lsf_job.sh.j2",
            directives=self.directives(unit),
            name=unit.name,
            workdir=unit.working_dir,
            submit_script=self.submit_script,
        )

    def submission_file(self, unit: Job) -> Path:
        self.prepare(unit)
        path = unit.working_dir / self.job_file_name
        path.write_text(self.render_job_script(unit), encoding="utf-8")
        return path

    def submit_command(
        self, script: Path, *, tag: str, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> list[str]:
        job = array.owner if array is not None else unit
        if job is None:
            raise BackendError(f"{script}: nothing to submit")
        if array is not None:
            (array.owner.working_dir / "lsf-logs").mkdir(exist_ok=True)
        inherit = bool(self.job_backend_args(job).get("inherit_env"))
        argv = ["bsub", "-Jd", f"jobfleet:{tag}", "-env", "all" if inherit else "none"]
        for tokens in self._options(job, array) + self._io_options(job, array):
            argv += tokens
        return [*argv, "/bin/bash", str(script)]

    def job_id_from_submit_output(self, stdout: str) -> str:
        return parse_bsub_output(stdout)

    def array_task_id(self, array_id: str, index: int) -> str:
        return f"{array_id}[{index}]"

    def status_command(self, native_ids: Sequence[str]) -> list[str]:
        jobs = sorted({nid.split("[")[0] for nid in native_ids}, key=int)
        return ["bjobs", "-a", "-json", "-o", _FIELDS, *jobs]

    def parse_status_output(self, stdout: str) -> dict[str, NativeState]:
        return {
            _native_id(rec): state_from_record(rec)
            for rec in parse_bjobs_json(stdout)
            if "ERROR" not in rec and rec.get("JOBID")
        }

    def cancel_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["bkill", *native_ids]

    def tag_query_command(self, tag: str) -> list[str] | None:
        return ["bjobs", "-a", "-json", "-o", "jobid jobindex job_description",
                "-Jd", f"jobfleet:{tag}"]  # fmt: skip

    def parse_tag_query_output(self, stdout: str, tag: str) -> str | None:
        for rec in parse_bjobs_json(stdout):
            if rec.get("JOB_DESCRIPTION") == f"jobfleet:{tag}" and rec.get("JOBID"):
                return str(rec["JOBID"])
        return None

    def active_count_command(self) -> list[str] | None:
        return ["bjobs", "-json", "-o", "jobid stat"]

    def parse_active_count(self, stdout: str) -> int:
        return sum(1 for rec in parse_bjobs_json(stdout) if "ERROR" not in rec)

    # -- running commands ----------------------------------------------------------------------

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        """Run a command; ids LSF has forgotten or that already ended are no failure.

        ``bjobs`` exits non-zero when any id is unknown (its JSON still answers for
        the rest, with an ``ERROR`` record for that id) or when the user has no
        unfinished job; ``bkill`` does when a job has already finished.
        """
        try:
            return super().run(argv, **kwargs)
        except CommandError as err:
            name = Path(argv[0]).name
            if name == "bjobs" and err.stdout.strip().startswith("{"):
                return CommandResult(tuple(argv), err.returncode or 1, err.stdout, err.stderr, 0)
            said = [ln for ln in (err.stdout + err.stderr).splitlines() if ln.strip()]
            if (
                name not in ("bjobs", "bkill")
                or not said
                or not all(_GONE.search(ln) for ln in said)
            ):
                raise
            log.info("%s: some jobs have ended or are unknown: %s", name, said[:3])
            stdout = err.stdout if name == "bkill" else ""
            return CommandResult(tuple(argv), err.returncode or 1, stdout, err.stderr, 0)

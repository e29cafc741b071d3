"""HTCondor: one cluster per submission (``queue subjob from (...)``), one ``condor_q``
per poll, ``condor_history`` for the jobs that left the queue.

The subjobs of a job go out as one cluster: one submit description whose
``queue subjob from`` list holds the subjob ids, with ``initialdir`` the
subjob's working directory, so proc ``p`` of cluster ``C`` (native id ``C.p``)
runs the ``p``-th subjob of the list. Every proc runs ``/bin/bash submit.sh``
(the unit's wrapper) in its ``initialdir``; with file transfer (the default)
the wrapper, the input list and the sandbox copies are transferred and the
outputs, exit code file included, come back on exit.

Held jobs (``JobStatus`` 5) keep waiting, their ``HoldReason`` logged and shown
as the unit's ``reason``; with ``hold_timeout`` they are released or removed
once held that long. Pure functions and argv builders otherwise; running and
polling live in :class:`~jobfleet.backends.batch.BatchBackend`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jobfleet.backends.base import owner_of
from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.native import ArrayChunk, NativeState
from jobfleet.commands import CommandResult
from jobfleet.errors import BackendError, CommandError, SpecError
from jobfleet.inputs import INPUT_DATA_FILE
from jobfleet.job import Job
from jobfleet.resources import Resources, resources_from_args, scheduler_name
from jobfleet.status import JobStatus
from jobfleet.templating import render
from jobfleet.workdir import STDERR_FILE, STDOUT_FILE

__all__ = ["JOB_STATUS", "HTCondor", "parse_classads", "parse_terse", "state_from_classad"]

log = logging.getLogger("jobfleet.backends.htcondor")

_S, _R, _F, _C = JobStatus.submitted, JobStatus.running, JobStatus.failed, JobStatus.completed
#: ``JobStatus`` codes (HTCondor manual, Job ClassAd attributes) -> (name, jobfleet status).
JOB_STATUS: Mapping[int, tuple[str, JobStatus]] = {
    0: ("UNEXPANDED", _S), 1: ("IDLE", _S), 2: ("RUNNING", _R), 3: ("REMOVED", _F),
    4: ("COMPLETED", _C), 5: ("HELD", _S), 6: ("TRANSFERRING_OUTPUT", _R),
    7: ("SUSPENDED", _R),
}  # fmt: skip
_ATTRIBUTES = ("ClusterId,ProcId,JobStatus,HoldReason,HoldReasonCode,ExitCode,ExitBySignal,"
               "ExitSignal,RemoveReason")  # fmt: skip
_TERSE = re.compile(r"^\s*(\d+)\.(\d+)\s*-\s*(\d+)\.(\d+)\s*$", re.M)
_VERBOSE = re.compile(r"^(\d+) job\(s\) submitted to cluster (\d+)\.", re.M)
_SIZE = re.compile(r"^\d+(\.\d+)?\s*[KMGT]?B?$", re.I)
_WORD = re.compile(r"^[A-Za-z0-9_.+@-]+$")
#: condor_rm / condor_release complaints that only mean "that job is not in the queue".
_GONE = re.compile(r"not found|Couldn't find|marked for removal|released|have been", re.I)
_TAG_ATTRIBUTE = "JobfleetTag"


def parse_terse(stdout: str) -> tuple[str, int]:
    """``condor_submit -terse`` output ``"12.0 - 12.49"`` -> (first job id, number of procs);
    the plain ``"50 job(s) submitted to cluster 12."`` is understood too."""
    m = _TERSE.search(stdout)
    if m is not None:
        return f"{m.group(1)}.{m.group(2)}", int(m.group(4)) - int(m.group(2)) + 1
    v = _VERBOSE.search(stdout)
    if v is not None:
        return f"{v.group(2)}.0", int(v.group(1))
    raise BackendError(f"condor_submit printed {stdout.strip()[:200]!r}, not a job id range")


def parse_classads(stdout: str) -> list[dict[str, Any]]:
    """The ads printed by ``condor_q -json`` / ``condor_history -json`` (nothing: none)."""
    text = stdout.strip()
    if not text:
        return []
    try:
        ads = json.loads(text)
    except json.JSONDecodeError as err:
        raise BackendError(f"HTCondor printed something that is not JSON: {err}") from None
    return [ad for ad in ads if isinstance(ad, dict)]


def state_from_classad(ad: Mapping[str, Any]) -> NativeState:
    """One job's ``JobStatus`` and exit attributes as a :class:`NativeState`."""
    code = int(ad.get("JobStatus", 0))
    name, status = JOB_STATUS.get(code, ("UNKNOWN", JobStatus.submitted))
    if code == 5:
        return NativeState(status, name, reason=str(ad.get("HoldReason") or "no reason given"))
    if code == 3:
        removed = str(ad.get("RemoveReason", ""))
        why = "timeout" if re.search(r"PeriodicRemove|periodic_remove", removed) else "cancelled"
        return NativeState(JobStatus.failed, name, reason=why)
    if code != 4:
        return NativeState(status, name)
    if ad.get("ExitBySignal") and ad.get("ExitSignal") is not None:
        exit_code: int | None = 128 + int(ad["ExitSignal"])
    else:
        exit_code = int(ad["ExitCode"]) if ad.get("ExitCode") is not None else None
    return NativeState(_C if exit_code == 0 else _F, name, exit_code)


def _states(stdout: str) -> dict[str, NativeState]:
    return {
        f"{ad['ClusterId']}.{ad['ProcId']}": state_from_classad(ad)
        for ad in parse_classads(stdout)
        if "ClusterId" in ad and "ProcId" in ad
    }


def _submit_value(value: str, what: str) -> str:
    """A value HTCondor reads literally: one line, no ``$`` (macro expansion)."""
    if "\n" in value or "\r" in value or "$" in value:
        raise SpecError(f"{what}: {value!r} cannot go into an HTCondor submit file")
    return value


class HTCondor(BatchBackend):
    """Submit to HTCondor with ``condor_submit``, follow with ``condor_q``/``condor_history``.

    ``backend_args``: the portable resources (``cores`` -> ``request_cpus``,
    ``memory`` -> ``request_memory``, ``gpus`` -> ``request_gpus``, ``walltime`` ->
    a ``periodic_remove`` limit, ``account`` -> ``accounting_group``, ``queue`` ->
    ``+JobFlavour``, ``job_name`` -> ``batch_name``, ``extra_directives``), and the
    caf.backends keys ``universe`` (``vanilla``), ``getenv`` (``false``; ``true``
    also with ``inherit_env``), ``request_memory`` (``"4 GB"`` when no ``memory``),
    ``request_disk``, ``extra_lines`` (submit commands added verbatim),
    ``path_prefix`` (prepended to the absolute paths in the submit file), and
    ``transfer_files`` (``True``: HTCondor file transfer; ``False``: a shared file
    system), ``max_cluster_size`` (procs per cluster, 20000), ``hold_timeout``
    (seconds; ``None``: held jobs wait for ever) with ``hold_action``
    (``"remove"``, failing the unit, or ``"release"``), ``global_job_limit``,
    ``exit_code_grace``, ``min_poll_interval``.
    """

    name = "htcondor"
    transient_errors = re.compile(
        r"Failed to connect|Failed to fetch ads|Can't find address|SECMAN:\d+|"
        r"Connection refused|timed out|try again|temporarily",
        re.I,
    )
    default_global_job_limit: ClassVar[int] = 10_000
    array_file_name: ClassVar[str] = "htcondor_{label}.sub"
    known_options: ClassVar[frozenset[str]] = BatchBackend.known_options | {
        "path_prefix", "request_disk", "extra_lines", "getenv", "hold_action", "hold_timeout",
        "max_cluster_size", "transfer_files", "universe",
    }  # fmt: skip
    poll_options: ClassVar[frozenset[str]] = BatchBackend.poll_options | {
        "hold_timeout", "hold_action", "path_prefix"
    }  # fmt: skip
    #: Submit description of a job without subjobs, in its working directory.
    batch_submit_script: ClassVar[str] = "submit.sub"
    default_backend_args: ClassVar[Mapping[str, Any]] = {
        "universe": "vanilla",
        "getenv": "false",
        "request_memory": "4 GB",
        "path_prefix": "",
        "extra_lines": [],
        "transfer_files": True,
    }

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(backend_args=backend_args)
        timeout = self.backend_args.get("hold_timeout")
        self.hold_timeout: float | None = None if timeout is None else float(timeout)
        self.hold_action = str(self.backend_args.get("hold_action", "remove"))
        if self.hold_action not in ("remove", "release"):
            raise ValueError(f"hold_action must be 'remove' or 'release', not {self.hold_action!r}")
        #: native id -> (hold reason, first seen held); the units held right now.
        self.held: dict[str, tuple[str, float]] = {}

    # -- text and argv -------------------------------------------------------------------------

    def max_array_size(self) -> int:
        return int(self.backend_args.get("max_cluster_size", 20_000))

    def check_job(self, job: Job) -> None:
        self._lines(job)
        self._path(job.working_dir)
        for entry in job.input_sandbox_files:
            if "," in _submit_value(entry.name, "input_sandbox_files"):
                raise SpecError(f"input_sandbox_files: {entry.name!r}: HTCondor cannot transfer it")

    def _resources(self, job: Job) -> Resources:
        res = resources_from_args(self.job_backend_args(job))
        if res.nodes is not None and res.nodes > 1:
            raise SpecError("backend_args: field 'nodes': HTCondor jobs run on one node")
        return res

    def _lines(self, job: Job) -> tuple[list[str], list[str]]:
        """(resource request lines, extra lines) of a job's submit description."""
        args, res = self.job_backend_args(job), self._resources(job)
        self._checked(str(args.get("universe", "vanilla")), "universe", _WORD)
        memory = str(res.memory_mb) if res.memory_mb is not None else str(args["request_memory"])
        requests = [f"request_memory = {self._checked(memory, 'request_memory', _SIZE)}"]
        if res.cores is not None:
            requests.append(f"request_cpus = {res.cores}")
        if res.gpus:
            requests.append(f"request_gpus = {res.gpus}")
        if args.get("request_disk") is not None:
            disk = self._checked(str(args["request_disk"]), "request_disk", _SIZE)
            requests.append(f"request_disk = {disk}")
        if res.walltime_s is not None:
            requests.append(f"periodic_remove = JobStatus == 2 && "
                            f"time() - EnteredCurrentStatus > {res.walltime_s}")  # fmt: skip
        if res.account is not None:
            requests.append(f"accounting_group = {res.account}")
        if res.queue is not None:
            requests.append(f'+JobFlavour = "{res.queue}"')
        name = res.job_name or scheduler_name(owner_of(job).name)
        requests.append(f"batch_name = {name}")
        extra = args.get("extra_lines") or []
        if isinstance(extra, str) or not all(isinstance(x, str) for x in extra):
            raise SpecError("backend_args: field 'extra_lines': a list of strings is required")
        for line in [*extra, *res.extra_directives]:
            if "\n" in line or "\r" in line or line.strip().lower().startswith("queue"):
                raise SpecError(f"backend_args: field 'extra_lines': {line!r} is not one command")
        return requests, [*extra, *res.extra_directives]

    @staticmethod
    def _checked(value: str, field: str, pattern: re.Pattern[str]) -> str:
        if not pattern.match(value.strip()):
            raise SpecError(f"backend_args: field '{field}': {value!r} is not valid")
        return value.strip()

    def _path(self, path: Path) -> str:
        return _submit_value(f"{self.backend_args.get('path_prefix') or ''}{path}", "path")

    def directives(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]:
        """HTCondor reads no directives from the script: the submit description has them."""
        return []

    def render_submit_file(
        self, job: Job, *, initialdir: str, log_file: Path, items: Sequence[int] | None
    ) -> str:
        """The submit description for ``job`` (one proc, or one per item of ``items``)."""
        args = self.job_backend_args(job)
        requests, extra = self._lines(job)
        getenv = str(args.get("getenv", "false")).lower() in ("true", "yes", "1")
        universe = self._checked(str(args.get("universe", "vanilla")), "universe", _WORD)
        owner = owner_of(job)
        transfer = [
            self.submit_script,
            INPUT_DATA_FILE,
            *(p.name for p in owner.input_sandbox_files),
        ]
        return render(
            "htcondor_submit.sub.j2",
            description=f"{scheduler_name(owner.name)} "
            f"({'one job' if items is None else f'{len(items)} subjobs'})",
            universe=universe,
            script=self.submit_script,
            initialdir=initialdir,
            stdout=STDOUT_FILE,
            stderr=STDERR_FILE,
            log=self._path(log_file),
            getenv="true" if getenv or args.get("inherit_env") else "false",
            requests=requests,
            transfer_files=bool(args.get("transfer_files", True)),
            transfer_input_files=",".join(transfer),
            extra_lines=extra,
            item_var="subjob",
            items=None if items is None else list(items),
        )

    def render_array_script(self, chunk: ArrayChunk) -> str:
        owner = chunk.owner
        return self.render_submit_file(
            owner,
            initialdir=f"{self._path(owner.working_dir)}/$(subjob)",
            log_file=owner.working_dir / f"htcondor_{chunk.label}.log",
            items=[unit.id for unit in chunk.units],
        )

    def submission_file(self, unit: Job) -> Path:
        self.prepare(unit)
        path = unit.working_dir / self.batch_submit_script
        text = self.render_submit_file(
            unit, initialdir=self._path(unit.working_dir),
            log_file=unit.working_dir / "htcondor.log", items=None,
        )  # fmt: skip
        path.write_text(text, encoding="utf-8")
        return path

    def submit_command(
        self, script: Path, *, tag: str, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> list[str]:
        return ["condor_submit", "-terse", "-append", f'+{_TAG_ATTRIBUTE} = "{tag}"', str(script)]

    def job_id_from_submit_output(self, stdout: str) -> str:
        return parse_terse(stdout)[0]

    def array_task_id(self, array_id: str, index: int) -> str:
        return f"{array_id.split('.')[0]}.{index}"

    def array_task_ids(self, array_id: str, chunk: ArrayChunk) -> list[str]:
        """Proc ``p`` runs the ``p``-th unit of the queue list."""
        cluster, first = array_id.split(".")
        return [f"{cluster}.{int(first) + p}" for p in range(len(chunk.units))]

    def status_command(self, native_ids: Sequence[str]) -> list[str]:
        clusters = sorted({nid.split(".")[0] for nid in native_ids}, key=int)
        return ["condor_q", "-json", "-attributes", _ATTRIBUTES, *clusters]

    def parse_status_output(self, stdout: str) -> dict[str, NativeState]:
        return _states(stdout)

    def history_command(self, native_ids: Sequence[str]) -> list[str] | None:
        clusters = sorted({nid.split(".")[0] for nid in native_ids}, key=int)
        return ["condor_history", "-json", "-attributes", _ATTRIBUTES, *clusters]

    def parse_history_output(self, stdout: str) -> dict[str, NativeState]:
        return _states(stdout)

    def cancel_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["condor_rm", *native_ids]

    def tag_query_command(self, tag: str) -> list[str] | None:
        return ["condor_q", "-json", "-attributes", f"ClusterId,ProcId,{_TAG_ATTRIBUTE}",
                "-constraint", f'{_TAG_ATTRIBUTE} == "{tag}"']  # fmt: skip

    def tag_history_command(self, tag: str) -> list[str] | None:
        # a short job may have left the queue before the lookup
        return ["condor_history", "-json", "-attributes", f"ClusterId,ProcId,{_TAG_ATTRIBUTE}",
                "-constraint", f'{_TAG_ATTRIBUTE} == "{tag}"']  # fmt: skip

    def parse_tag_history_output(self, stdout: str, tag: str) -> str | None:
        return self.parse_tag_query_output(stdout, tag)

    def parse_tag_query_output(self, stdout: str, tag: str) -> str | None:
        ads = [ad for ad in parse_classads(stdout) if ad.get(_TAG_ATTRIBUTE) == tag]
        if not ads:
            return None
        # a submission is one new cluster whose procs count from 0; procs that already
        # ended are not in the queue, so the lowest one listed need not be the first
        return f"{min(int(ad['ClusterId']) for ad in ads)}.0"

    def active_count_command(self) -> list[str] | None:
        return ["condor_q", "-json", "-attributes", "ClusterId,ProcId"]

    def parse_active_count(self, stdout: str) -> int:
        return len(parse_classads(stdout))

    # -- running commands, holds -----------------------------------------------------------------

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        """Run a command; ``condor_rm`` of jobs already gone is no failure.

        ``condor_rm`` / ``condor_release`` exit 1 when any id is no longer in the
        queue (it finished meanwhile); the others were still handled.
        """
        try:
            return super().run(argv, **kwargs)
        except CommandError as err:
            if Path(argv[0]).name not in ("condor_rm", "condor_release") or err.returncode != 1:
                raise
            said = [ln for ln in (err.stdout + err.stderr).splitlines() if ln.strip()]
            if not said or not all(_GONE.search(ln) for ln in said):
                raise
            log.info("%s: some jobs were no longer in the queue: %s", argv[0], said[:3])
            return CommandResult(tuple(argv), 1, err.stdout, err.stderr, 0.0)

    def _apply(self, unit: Job, state: NativeState) -> None:
        """Report a hold (once, and as the unit's reason) before the usual update."""
        native = unit.native_id or ""
        if state.state == "HELD":
            reason = state.reason or "no reason given"
            if self.held.get(native, ("", 0.0))[0] != reason:
                log.warning("%s (%s) is held: %s; waiting", unit.name, native, reason)
                self.held[native] = (reason, time.monotonic())
            unit.reason = f"held: {reason}"
            super()._apply(unit, NativeState(state.status, state.state))
            return
        if self.held.pop(native, None) is not None and not unit.status.is_final:
            log.info("%s (%s) is no longer held", unit.name, native)
            unit.reason = None
        super()._apply(unit, state)

    def poll(self, *, force: bool = False) -> list[Job]:
        changed = super().poll(force=force)
        if self.hold_timeout is None:
            return changed
        now = time.monotonic()
        due = {nid: reason for nid, (reason, since) in self.held.items()
               if now - since >= self.hold_timeout and nid in self._active}  # fmt: skip
        if not due:
            return changed
        if self.hold_action == "release":
            self.run(["condor_release", *due])
            for nid in due:
                self.held[nid] = (self.held[nid][0], now)
            log.warning("released %d jobs held longer than %.0f s", len(due), self.hold_timeout)
            return changed
        self.run(self.cancel_command(list(due)))
        for nid, reason in due.items():
            unit = self._active.pop(nid)
            self.held.pop(nid, None)
            unit.reason = None
            self._finish(unit, None, f"held for more than {self.hold_timeout:g} s: {reason}")
            changed.append(unit)
        return changed

"""DIRAC: parametric JDL submissions, one ``dirac-wms-job-status`` per poll, output sandboxes.

How a job travels (DIRAC copies files by base name and runs every job in a fresh
directory on a worker node, so the submit-side working directories never reach it):

* The subjobs of one submission go out as ONE parametric job: ``Parameters``
  lists their subjob ids and DIRAC creates one DIRAC job per id, substituting
  it for ``%s`` (``Arguments``, ``JobName``) and, per subjob, its LFNs for
  ``%(InputData)s``. A job without subjobs is a plain JDL.
* The input sandbox holds the dispatcher ``jobfleet-dirac.sh``, the user's
  ``input_sandbox_files`` (once, not once per subjob) and a bundle
  ``dirac_<label>.tar.gz`` with one directory per unit: ``<key>/submit.sh``,
  ``<key>/__BACKEND_INPUT_FILES__.json`` and ``<key>/jobfleet-inputs/`` (the
  unit's local input files; the JSON names them relative to the job directory).
  The dispatcher unpacks its own unit's directory into the DIRAC job directory
  and runs the wrapper there: each DIRAC job gets its own subjob's copy.
* The output sandbox holds ``stdout``, ``stderr``, the exit code file and
  ``jobfleet-outputs.tar``, into which the dispatcher packs the files matching
  ``output_patterns`` with their relative paths (DIRAC would flatten them to
  base names and tar directories on its own).
* When DIRAC reports a unit ``Done`` (or ``Failed``/``Killed``), its output
  sandbox is fetched with one ``dirac-wms-job-get-output`` for all such units
  of a job and moved into the unit's working directory before the exit code is
  read and the outputs are collected.

Pure functions and argv builders, plus the output-sandbox step; running and
polling live in :class:`~jobfleet.backends.batch.BatchBackend`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from jobfleet.backends.base import owner_of
from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.dirac_jdl import (
    PARAMETRIC_LIMIT,
    as_list,
    dirac_state,
    jdl_attribute,
    jdl_list,
    jdl_string,
    lfn_of,
    parse_get_output,
    parse_select_output,
    parse_status_lines,
    parse_submit_output,
)
from jobfleet.backends.native import ArrayChunk, NativeState
from jobfleet.errors import BackendError, CommandError, SpecError
from jobfleet.inputs import INPUT_DATA_FILE, local_path
from jobfleet.job import Job, SubJob
from jobfleet.resources import scheduler_name
from jobfleet.status import JobStatus
from jobfleet.templating import render
from jobfleet.workdir import EXIT_CODE_FILE, STDERR_FILE, STDOUT_FILE, SUBMIT_SCRIPT, read_exit_code

__all__ = ["DISPATCHER", "OUTPUTS_TAR", "Dirac"]

log = logging.getLogger("jobfleet.backends.dirac")

DISPATCHER = "jobfleet-dirac.sh"
OUTPUTS_TAR = "jobfleet-outputs.tar"
INPUTS_DIR = "jobfleet-inputs"
_RESERVED = {DISPATCHER, OUTPUTS_TAR, INPUTS_DIR, SUBMIT_SCRIPT, INPUT_DATA_FILE,
             EXIT_CODE_FILE, STDOUT_FILE, STDERR_FILE}  # fmt: skip
_BUNDLE = re.compile(r"dirac_.*\.(jdl|tar\.gz)$")
_S, _R, _F, _C = JobStatus.submitted, JobStatus.running, JobStatus.failed, JobStatus.completed


def _key(unit: Job) -> str:
    """The unit's directory in the bundle, and the argument the dispatcher gets."""
    return str(unit.id) if isinstance(unit, SubJob) else "job"


def _unpack_outputs(workdir: Path) -> None:
    """Unpack ``jobfleet-outputs.tar`` in place; links or paths leading out are refused."""
    archive = workdir / OUTPUTS_TAR
    if not archive.exists():
        return
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
        archive.unlink()
    except (tarfile.TarError, OSError) as err:
        log.warning("%s: cannot unpack the job's outputs: %s", archive, err)


class Dirac(BatchBackend):
    """Submit to DIRAC with ``dirac-wms-job-submit`` (subjobs as one parametric job).

    ``backend_args``: ``cores`` (``NumberOfProcessors``), ``walltime`` (``CPUTime``;
    DIRAC counts HEPSPEC06-normalised CPU seconds, ``cpu_time`` sets it directly),
    ``job_name``, ``extra_directives`` (JDL lines such as ``Priority = 3;``),
    ``site``, ``banned_sites``, ``tags``, ``platform``, ``max_parametric_jobs``
    (the server's ``MaxParametricJobs``, default 100; lowered automatically
    when the server refuses more), ``output_retrieval_attempts`` (polls that
    may fail to fetch a finished job's output sandbox, default 3), and the
    shared ``global_job_limit``, ``exit_code_grace``, ``min_poll_interval``,
    ``command_timeout``, ``retry_scale``. ``memory``, ``queue``, ``account``,
    ``gpus`` and ``nodes`` have no JDL attribute and are ignored with a
    warning (ask for such resources with ``tags``).
    """

    name = "dirac"
    array_file_name: ClassVar[str] = "dirac_{label}.jdl"
    known_options: ClassVar[frozenset[str]] = BatchBackend.known_options | {
        "cpu_time", "max_parametric_jobs", "output_retrieval_attempts", "platform", "site",
        "banned_sites", "tags",
    }  # fmt: skip
    poll_options: ClassVar[frozenset[str]] = BatchBackend.poll_options | {
        "output_retrieval_attempts"
    }  # fmt: skip
    transient_errors = re.compile(
        r"Can't connect|Connection timeout|Connection closed by peer|Peer closed connection|"
        r"Socket read timeout|Connection seems stalled|Maximum number of connections|"
        r"Try later|timed out|temporarily|try again",
        re.I,
    )

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(backend_args=backend_args)
        self._max_parametric = int(self.backend_args.get("max_parametric_jobs", 100))
        self.output_retrieval_attempts = int(self.backend_args.get("output_retrieval_attempts", 3))
        if self._max_parametric < 1 or self.output_retrieval_attempts < 1:
            raise ValueError("max_parametric_jobs and output_retrieval_attempts must be >= 1")
        #: Final states whose output sandbox is still to be fetched (this poll).
        self._pending: dict[str, tuple[Job, NativeState]] = {}
        self._fetched: set[str] = set()
        self._fetch_failures: dict[str, int] = {}

    # -- checks and text -----------------------------------------------------------------------

    def max_array_size(self) -> int:
        return self._max_parametric

    def check_job(self, job: Job) -> None:
        self.attributes(job)
        res = self.resources_for(job)
        for field in ("memory_mb", "queue", "account", "gpus", "nodes"):
            if getattr(res, field):
                log.warning("%s: %s has no DIRAC JDL attribute; ignored", job.name, field)
        names: set[str] = set()
        for entry in job.input_sandbox_files:
            jdl_string(str(entry), "input_sandbox_files")
            if entry.name in _RESERVED or _BUNDLE.match(entry.name) or entry.name in names:
                raise SpecError(
                    f"{job!r}: field 'input_sandbox_files': DIRAC keeps only base names, and "
                    f"{entry.name!r} is reserved or used twice"
                )
            names.add(entry.name)
        for pattern in job.output_patterns:
            if "\n" in pattern:
                raise SpecError(f"{job!r}: field 'output_patterns': {pattern!r} has a newline")
        for unit in [job, *job.subjobs.values()]:
            for item in unit.input_files:
                lfn = lfn_of(item)
                if lfn is not None:
                    jdl_string(lfn, "input_files")

    def attributes(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]:
        """JDL lines for the job's resources and DIRAC options (validated)."""
        args = self.job_backend_args(job)
        res = self.resources_for(job, array=array)
        lines = []
        cpu_time = args.get("cpu_time", res.walltime_s)
        if cpu_time is not None:
            if isinstance(cpu_time, bool) or not isinstance(cpu_time, int) or cpu_time < 1:
                raise SpecError(f"backend dirac: field 'cpu_time': {cpu_time!r} is not seconds")
            lines.append(f"CPUTime = {cpu_time};")
        if res.cores is not None:
            lines.append(f"NumberOfProcessors = {res.cores};")
        for field, attribute in (("site", "Site"), ("banned_sites", "BannedSites"),
                                 ("tags", "Tags")):  # fmt: skip
            values = as_list(args.get(field) or [], field)
            if values:
                lines.append(f"{attribute} = {jdl_list(values, field)};")
        if args.get("platform"):
            lines.append(f"Platform = {jdl_string(str(args['platform']), 'platform')};")
        lines.extend(jdl_attribute(line) for line in res.extra_directives)
        return lines

    def directives(self, job: Job, *, array: ArrayChunk | None = None) -> list[str]:
        return []  # everything DIRAC reads is in the JDL, not in the wrapper

    def _render_jdl(self, units: Sequence[Job], jdl: Path, chunk: ArrayChunk | None) -> str:
        owner = owner_of(units[0])
        lfns = [[lfn for e in u.input_files if (lfn := lfn_of(e))] for u in units]
        sandbox = [jdl.parent / DISPATCHER, jdl.with_suffix(".tar.gz"), *owner.input_sandbox_files]
        name = scheduler_name(str(self.job_backend_args(owner).get("job_name") or owner.name))
        return render(
            "dirac_job.jdl.j2",
            title=f"subjobs {chunk.label} of {owner.name}" if chunk else units[0].name,
            job_name=f"{name}_%s" if chunk else name,
            dispatcher=DISPATCHER,
            bundle=jdl.with_suffix(".tar.gz").name,
            key="%s" if chunk else _key(units[0]),
            parameters=[_key(u) for u in units] if chunk else [],
            input_sandbox=jdl_list([str(p) for p in sandbox], "input_sandbox_files"),
            output_sandbox=jdl_list([STDOUT_FILE, STDERR_FILE, EXIT_CODE_FILE, OUTPUTS_TAR], ""),
            input_data=[jdl_list(u, "input_files") for u in lfns] if any(lfns) else [],
            attributes=self.attributes(owner if chunk else units[0], array=chunk),
        )

    def render_array_script(self, chunk: ArrayChunk) -> str:
        jdl = chunk.owner.working_dir / self.array_file_name.format(label=chunk.label)
        return self._render_jdl(chunk.units, jdl, chunk)

    def submission_file(self, unit: Job) -> Path:
        self.prepare(unit)
        jdl = unit.working_dir / f"dirac_{_key(unit)}.jdl"
        jdl.write_text(self._render_jdl([unit], jdl, None), "utf-8")
        return jdl

    def _chunks(self, owner: Job, subjobs: list[SubJob]) -> list[ArrayChunk]:
        """Parametric jobs list subjob ids, not indices: chunk by count only."""
        size = max(1, min(self.max_array_size(), self.global_job_limit))
        ordered = sorted(subjobs, key=lambda s: s.id)
        return [ArrayChunk(owner, tuple(ordered[i : i + size]), 0)
                for i in range(0, len(ordered), size)]  # fmt: skip

    # -- submitting ----------------------------------------------------------------------------

    def _write_bundle(self, jdl: Path, units: Sequence[Job]) -> None:
        """The dispatcher next to the JDL, and the bundle of every unit's own files."""
        owner = owner_of(units[0])
        dispatcher = jdl.parent / DISPATCHER
        dispatcher.write_text(render("dirac_run.sh.j2", name=owner.name,
                                     patterns=list(owner.output_patterns),
                                     outputs_tar=OUTPUTS_TAR), "utf-8")  # fmt: skip
        dispatcher.chmod(0o755)
        with tarfile.open(jdl.with_suffix(".tar.gz"), "w:gz") as tar:
            for unit in units:
                key, listed = _key(unit), []
                tar.add(unit.working_dir / SUBMIT_SCRIPT, f"{key}/{SUBMIT_SCRIPT}")
                for entry in unit.input_files:
                    lfn = lfn_of(entry)
                    path = None if lfn else local_path(entry)
                    if path is None:
                        listed.append(lfn or entry)  # the job opens LFNs and remote URIs
                        continue
                    rel = PurePosixPath(INPUTS_DIR, path.name)
                    if rel.as_posix() in listed:
                        rel = PurePosixPath(INPUTS_DIR, str(len(listed)), path.name)
                    tar.add(path, f"{key}/{rel}")
                    listed.append(rel.as_posix())
                data = json.dumps(listed).encode()
                info = tarfile.TarInfo(f"{key}/{INPUT_DATA_FILE}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    def submit_command(
        self, script: Path, *, tag: str, unit: Job | None = None, array: ArrayChunk | None = None
    ) -> list[str]:
        units: Sequence[Job] = array.units if array is not None else [unit] if unit else []
        self._write_bundle(script, units)
        with script.open("a", encoding="utf-8") as jdl:
            jdl.write(f'JobGroup = "jobfleet-{tag}";\n')  # the tag is only known now
        return ["dirac-wms-job-submit", str(script)]

    def job_id_from_submit_output(self, stdout: str) -> str:
        return ",".join(parse_submit_output(stdout))

    def array_task_id(self, array_id: str, index: int) -> str:
        return array_id.split(",")[index]

    def array_task_ids(self, array_id: str, chunk: ArrayChunk) -> list[str]:
        ids = array_id.split(",")
        if len(ids) != len(chunk.units):
            raise BackendError(
                f"DIRAC created {len(ids)} jobs for the {len(chunk.units)} subjobs "
                f"{chunk.label} of {chunk.owner.name}: {array_id}"
            )
        return ids  # DIRAC numbers a parametric job's jobs in parameter order

    def _submit_array(self, chunk: ArrayChunk) -> None:
        try:
            super()._submit_array(chunk)
        except BackendError as err:
            said = f"{err} {getattr(err.__cause__, 'stdout', '')}"
            limit = PARAMETRIC_LIMIT.search(said)
            if limit is None or not 0 < int(limit.group(1)) < len(chunk.units):
                raise
            log.warning("DIRAC takes at most %s parametric jobs at once; splitting", limit[1])
            self._max_parametric = int(limit.group(1))
            for smaller in self._chunks(chunk.owner, list(chunk.units)):
                self._submit_array(smaller)

    def tag_query_command(self, tag: str) -> list[str] | None:
        return ["dirac-wms-select-jobs", f"--JobGroup=jobfleet-{tag}", "--Maximum=0"]

    def parse_tag_query_output(self, stdout: str, tag: str) -> str | None:
        return ",".join(parse_select_output(stdout)) or None

    # -- following -----------------------------------------------------------------------------

    def status_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["dirac-wms-job-status", *native_ids]

    def parse_status_output(self, stdout: str) -> dict[str, NativeState]:
        return {
            job_id: dirac_state(fields.get("Status", ""), fields.get("MinorStatus", ""))
            for job_id, fields in parse_status_lines(stdout).items()
        }

    def cancel_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["dirac-wms-job-kill", *native_ids]

    def _apply(self, unit: Job, state: NativeState) -> None:
        nid = unit.native_id or ""
        if state.status.is_final and nid not in self._fetched:
            self._pending[nid] = (unit, state)  # fetched for all such units after the poll
            return
        if state.status is _F and state.reason is None and read_exit_code(unit.working_dir) is None:
            state = dataclasses.replace(state, reason=state.state.partition(": ")[2] or "failed")
        super()._apply(unit, state)

    def poll(self, *, force: bool = False) -> list[Job]:
        """One status query, then one output-sandbox download per job for the units that ended."""
        self._pending = {}
        changed = super().poll(force=force)
        pending, self._pending = self._pending, {}
        by_owner: dict[int, list[tuple[str, Job, NativeState]]] = {}
        for nid, (unit, state) in pending.items():
            by_owner.setdefault(id(owner_of(unit)), []).append((nid, unit, state))
        for group in by_owner.values():
            errors = self._download(owner_of(group[0][1]), {nid: u for nid, u, _ in group})
            for nid, unit, state in group:
                if nid in errors and self._retry_later(nid, unit, state, errors[nid]):
                    continue
                self._fetched.add(nid)
                before = unit.status
                self._apply(unit, state)
                if unit.status is not before:
                    changed.append(unit)
                if unit.status.is_final:
                    self._active.pop(nid, None)
                    self._fetched.discard(nid)
                    self._fetch_failures.pop(nid, None)
        return changed

    def _download(self, owner: Job, units: Mapping[str, Job]) -> dict[str, str]:
        """Fetch these units' output sandboxes into their working directories (one command);
        returns why each one that did not arrive is missing."""
        # A fresh directory: the command skips ids that already exist where it writes.
        staging = Path(tempfile.mkdtemp(prefix=".dirac-output-", dir=owner.working_dir))
        try:
            argv = ["dirac-wms-job-get-output", "-D", str(staging), *units]
            try:
                said = parse_get_output(self.run(argv, ok_codes=(0, 2), cwd=staging).stdout)
            except CommandError as err:
                said = dict.fromkeys(units, str(err))
            errors = {}
            for nid, unit in units.items():
                if (staging / nid).is_dir():
                    self._place(staging / nid, unit.working_dir)
                else:
                    errors[nid] = said.get(nid, "not retrieved")
            return errors
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _retry_later(self, nid: str, unit: Job, state: NativeState, why: str) -> bool:
        """A missing sandbox: try again next poll, or (too many tries, or a failure) go on."""
        tries = self._fetch_failures[nid] = self._fetch_failures.get(nid, 0) + 1
        if state.status is _C and tries < self.output_retrieval_attempts:
            log.info("%s: output sandbox of DIRAC job %s not there yet: %s", unit.name, nid, why)
            return True
        log.warning("%s: no output sandbox for DIRAC job %s: %s", unit.name, nid, why)
        if state.status is _C:
            self._finish(unit, None, f"output sandbox not retrieved: {why}")
        return False

    @staticmethod
    def _place(got: Path, workdir: Path) -> None:
        """Move a downloaded sandbox into the unit's working directory, replacing old copies."""
        for entry in got.iterdir():
            target = workdir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            shutil.move(str(entry), target)
        _unpack_outputs(workdir)

"""The job model: :class:`Job`, its :class:`SubJob` children, and their status."""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from jobfleet import environment, inputs
from jobfleet._gc import cycle_collector_paused
from jobfleet.errors import SpecError, SplitterError
from jobfleet.splitters import MaxFilesSplitter, MaxSubjobsSplitter, SubjobSplitter
from jobfleet.status import JobStatus

__all__ = ["Job", "Result", "SubJob"]

log = logging.getLogger("jobfleet.job")


class Result(Protocol):
    """What a backend attaches to ``job.result`` once the job is submitted."""

    def update_status(self) -> None: ...

    def ready(self) -> bool: ...


def _log_transition(name: str, old: JobStatus, new: JobStatus, reason: str | None) -> None:
    if new is JobStatus.failed:
        log.warning("%s: %s -> failed%s", name, old.value, f" ({reason})" if reason else "")
    else:
        log.info("%s: %s -> %s", name, old.value, new.value)


class Job:
    """A command to run, its inputs and outputs, and (optionally) its subjobs.

    Describe the job once; a backend turns it into scheduler work. If a
    ``splitter`` is set, submission first splits the job into :class:`SubJob` s.
    """

    #: Status name -> rank, lowest first (kept for caf.backends code that reads it).
    statuses: Mapping[str, int] = MappingProxyType({s.value: s.rank for s in JobStatus})
    #: Statuses in which a job has ended.
    exit_statuses = ("failed", "completed")

    def __init__(self, name: str, job_dict: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.splitter: SubjobSplitter | None = None
        self.result: Result | None = None
        self.exit_code: int | None = None
        self.reason: str | None = None
        self.attempt = 0
        #: The scheduler's id of this unit once submitted (e.g. ``"123_4"`` for a Slurm array task).
        self.native_id: str | None = None
        #: Factors applied to this unit's memory / walltime on its next submission (retry_scale).
        self.resource_scale: dict[str, float] = {}
        self._status = JobStatus.init
        self._counts: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
        self._subjobs: dict[int, SubJob] = {}
        self.input_sandbox_files: list[Path] = []
        self.working_dir = Path()
        self.output_dir = Path()
        self.output_patterns: list[str] = []
        self.cmd: list[str] = []
        self.args: list[Any] = []
        self.input_files: list[str] = []
        self.setup_cmds: list[str] = []
        self.backend_args: dict[str, Any] = {}
        if job_dict:
            # Imported here: its pydantic models cost more to build than the rest of the
            # package to import, and only jobs made from a job dict need them.
            from jobfleet.jobdoc import parse_job_dict

            self._load(parse_job_dict(job_dict))

    def _load(self, doc: dict[str, Any]) -> None:
        self.input_sandbox_files = doc["input_sandbox_files"]
        self.working_dir = doc["working_dir"]
        self.output_dir = doc["output_dir"]
        self.output_patterns = doc["output_patterns"]
        self.cmd = doc["cmd"]
        self.args = doc["args"]
        self.input_files = doc["input_files"]
        self.setup_cmds = doc["setup_cmds"]
        self.backend_args = doc["backend_args"]
        for sub in doc["subjobs"]:
            self.create_subjob(sub["id"], input_files=sub["input_files"], args=sub["args"])

    def __repr__(self) -> str:
        return f"Job({self.name})"

    # -- paths and inputs -------------------------------------------------------------------

    @property
    def working_dir(self) -> Path:
        return self._working_dir

    @working_dir.setter
    def working_dir(self, value: str | os.PathLike[str]) -> None:
        self._working_dir = Path(os.path.abspath(value))

    @property
    def output_dir(self) -> Path:
        return self._output_dir

    @output_dir.setter
    def output_dir(self, value: str | os.PathLike[str]) -> None:
        self._output_dir = Path(os.path.abspath(value))

    @property
    def input_sandbox_files(self) -> list[Path]:
        return self._input_sandbox_files

    @input_sandbox_files.setter
    def input_sandbox_files(self, value: Iterable[str | os.PathLike[str]]) -> None:
        self._input_sandbox_files = [Path(os.path.abspath(p)) for p in value]

    @property
    def input_files(self) -> list[str]:
        return self._input_files

    @input_files.setter
    def input_files(self, value: Iterable[str | os.PathLike[str]]) -> None:
        self._input_files = [inputs.normalise_input(p) for p in value]

    def check_input_data_files(self) -> None:
        """Remove duplicate input files and local files that do not exist (with a warning)."""
        self.input_files = inputs.check_input_files(self.input_files, self)

    # -- splitting ---------------------------------------------------------------------------

    @property
    def max_files_per_subjob(self) -> int:
        if not isinstance(self.splitter, MaxFilesSplitter):
            raise SplitterError(f"{self!r} has no MaxFilesSplitter (splitter is {self.splitter!r})")
        return self.splitter.max_files_per_subjob

    @max_files_per_subjob.setter
    def max_files_per_subjob(self, value: int) -> None:
        self.splitter = MaxFilesSplitter(max_files_per_subjob=value)

    @property
    def max_subjobs(self) -> int:
        limit = getattr(self.splitter, "max_subjobs", None)
        if limit is None:
            raise SplitterError(f"{self!r} has no splitter with max_subjobs ({self.splitter!r})")
        return int(limit)

    @max_subjobs.setter
    def max_subjobs(self, value: int) -> None:
        self.splitter = MaxSubjobsSplitter(max_subjobs=value)

    @property
    def subjobs(self) -> dict[int, SubJob]:
        return self._subjobs

    @subjobs.setter
    def subjobs(self, value: Mapping[int, SubJob]) -> None:
        self._subjobs = dict(value)
        self._recount()

    def create_subjob(
        self, i: int, input_files: Iterable[str | os.PathLike[str]] | None = None, args: Any = None
    ) -> SubJob:
        """Create subjob ``i`` (or return the existing one, with a warning)."""
        if i in self._subjobs:
            log.warning("%r already has subjob %d; not creating it again", self, i)
            return self._subjobs[i]
        subjob = SubJob(self, i, input_files)
        if args is not None:
            subjob.args = list(args)
        return self.add_subjob(subjob)

    def add_subjob(self, subjob: SubJob) -> SubJob:
        if subjob.id in self._subjobs:
            raise SplitterError(f"{self!r} already has subjob {subjob.id}")
        self._subjobs[subjob.id] = subjob
        self._counts[subjob._status] += 1
        return subjob

    def split(self) -> None:
        """Create the subjobs with the splitter, unless there already are some."""
        if self.splitter is not None and not self._subjobs:
            with cycle_collector_paused():
                self.splitter.create_subjobs(self)

    # -- status ------------------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        """Own status, or for a job with subjobs the lowest status among them."""
        if not self._subjobs:
            return self._status
        if sum(self._counts.values()) != len(self._subjobs):
            self._recount()  # someone edited the subjobs dict directly
        return self._aggregate()

    @status.setter
    def status(self, value: str | JobStatus) -> None:
        self.set_status(value, force=True)

    def _aggregate(self) -> JobStatus:
        for status in JobStatus:
            if self._counts[status]:
                return status
        return self._status

    def _recount(self) -> None:
        self._counts = dict.fromkeys(JobStatus, 0)
        for subjob in self._subjobs.values():
            self._counts[subjob._status] += 1

    def status_counts(self) -> dict[str, int]:
        """Number of subjobs in each status (the job itself if it has none)."""
        if not self._subjobs:
            return {self._status.value: 1}
        self.status  # noqa: B018 -- recounts if the subjobs dict was edited
        return {s.value: n for s, n in self._counts.items() if n}

    def set_status(
        self,
        value: str | JobStatus,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        force: bool = False,
    ) -> bool:
        """Move to ``value``; returns whether the status changed.

        Without ``force`` a status only moves forward and an ended job stays
        ended, so a late or repeated report cannot undo a result.
        """
        new = JobStatus(value)
        old = self._status
        if new is old:
            return False
        if not force and (old.is_final or new.rank < old.rank):
            log.debug("%s: ignoring %s -> %s", self.name, old.value, new.value)
            return False
        self._status = new
        if new.is_final:
            self.exit_code = exit_code
            self.reason = reason if new is JobStatus.failed else None
        elif new is JobStatus.init:
            self.exit_code = self.reason = None
        _log_transition(self.name, old, new, reason)
        self._moved(old, new)
        return True

    def _moved(self, old: JobStatus, new: JobStatus) -> None:
        """Hook for subjobs to keep the parent's counts."""

    def update_status(self) -> JobStatus:
        """Ask the backend for news, then return the status."""
        if self.result is None:
            log.debug("%r has not been submitted; no status to update", self)
        else:
            self.result.update_status()
        return self.status

    def ready(self) -> bool:
        """Whether the job (all its subjobs) has ended. Does not ask the backend."""
        if self.result is None:
            return False
        return self.result.ready()

    # -- serialisation -----------------------------------------------------------------------

    @property
    def job_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description of the job and its subjobs."""
        return {
            "name": self.name,
            "input_sandbox_files": [p.as_posix() for p in self.input_sandbox_files],
            "working_dir": self.working_dir.as_posix(),
            "output_dir": self.output_dir.as_posix(),
            "output_patterns": list(self.output_patterns),
            "cmd": list(self.cmd),
            "args": list(self.args),
            "input_files": list(self.input_files),
            "setup_cmds": list(self.setup_cmds),
            "backend_args": dict(self.backend_args),
            "subjobs": [sj.job_dict for sj in self._subjobs.values()],
        }

    def dump_to_json(self, file_path: str | os.PathLike[str]) -> None:
        with open(file_path, "w", encoding="utf-8") as handle:
            json.dump(self.job_dict, handle, indent=2)

    @classmethod
    def from_json(cls, file_path: str | os.PathLike[str]) -> Job:
        try:
            with open(file_path, encoding="utf-8") as handle:
                doc = json.load(handle)
        except OSError as err:
            raise SpecError(f"job JSON {file_path}: cannot read it: {err.strerror}") from err
        except json.JSONDecodeError as err:
            raise SpecError(f"job JSON {file_path}: not valid JSON: {err}") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise SpecError(f"job JSON {file_path}: field 'name': a string is required")
        try:
            return cls(doc["name"], job_dict=doc)
        except SpecError as err:
            raise SpecError(f"job JSON {file_path}: {err}") from None

    # -- environment (see jobfleet.environment) ----------------------------------------------

    def append_current_setup_cmds(self, *, site_setup: Sequence[str] = ()) -> list[Any]:
        """Capture this process's virtualenv / conda / modules (and ``site_setup`` lines).

        Their setup commands go before the job's own ``setup_cmds``. Returns the
        detected :class:`~jobfleet.environment.SetupPart` s.
        """
        parts = environment.detect_setup(site_setup=site_setup)
        self._prepend_setup([line for part in parts for line in part.commands])
        return parts

    def forward_environment(self, patterns: Iterable[str]) -> None:
        """Forward variables (names or glob patterns) with their current values."""
        self._prepend_setup(environment.forward_lines(patterns))

    def set_environment(self, values: Mapping[str, object]) -> None:
        """Set variables to explicit values in the job's environment."""
        self._prepend_setup(environment.set_lines(values))

    def _prepend_setup(self, lines: Sequence[str]) -> None:
        fresh = [line for line in lines if line not in self.setup_cmds]
        self.setup_cmds = [*fresh, *self.setup_cmds]

    @property
    def full_command(self) -> str:
        """The command line the job runs, every part shell-quoted."""
        return " ".join(shlex.quote(str(part)) for part in [*self.cmd, *self.args])


class SubJob(Job):
    """One piece of a split job: own id, input files, arguments and status.

    Everything else (command, setup, backend arguments, ...) is read from the parent.
    """

    def __init__(
        self, job: Job, subjob_id: int, input_files: Iterable[str | os.PathLike[str]] | None = None
    ) -> None:
        self.id = subjob_id
        self.parent = job
        self.result: Result | None = None
        self.exit_code: int | None = None
        self.reason: str | None = None
        self.attempt = 0
        self.native_id: str | None = None
        self.resource_scale: dict[str, float] = {}
        self._status = JobStatus.init
        self._own_args: list[Any] | None = None
        self._input_files = [inputs.normalise_input(p) for p in input_files or ()]

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes a SubJob does not hold itself.
        if attribute.startswith("__") or attribute == "parent":
            raise AttributeError(attribute)
        return getattr(self.parent, attribute)

    def __repr__(self) -> str:
        return f"SubJob({self.name})"

    @property
    def name(self) -> str:
        return f"{self.parent.name}_{self.id}"

    @name.setter
    def name(self, value: str) -> None:
        raise AttributeError(f"{self!r}: a subjob's name follows its parent's")

    @property
    def working_dir(self) -> Path:
        return self.parent.working_dir / str(self.id)

    @working_dir.setter
    def working_dir(self, value: str | os.PathLike[str]) -> None:
        raise AttributeError(f"{self!r}: a subjob's working_dir follows its parent's")

    @property
    def output_dir(self) -> Path:
        return self.parent.output_dir / str(self.id)

    @output_dir.setter
    def output_dir(self, value: str | os.PathLike[str]) -> None:
        raise AttributeError(f"{self!r}: a subjob's output_dir follows its parent's")

    @property
    def input_sandbox_files(self) -> list[Path]:
        return self.parent.input_sandbox_files

    @input_sandbox_files.setter
    def input_sandbox_files(self, value: Iterable[str | os.PathLike[str]]) -> None:
        raise AttributeError(f"{self!r}: a subjob's sandbox is its parent's")

    @property
    def args(self) -> list[Any]:
        """Own arguments if set (e.g. by an arguments generator), else the parent's."""
        return self.parent.args if self._own_args is None else self._own_args

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self._own_args = list(value)

    @property
    def subjobs(self) -> dict[int, SubJob]:
        return {}

    @subjobs.setter
    def subjobs(self, value: Mapping[int, SubJob]) -> None:
        raise AttributeError(f"{self!r}: a subjob cannot have subjobs")

    @property
    def status(self) -> JobStatus:
        return self._status

    @status.setter
    def status(self, value: str | JobStatus) -> None:
        self.set_status(value, force=True)

    def _moved(self, old: JobStatus, new: JobStatus) -> None:
        parent = self.parent
        if parent._subjobs.get(self.id) is not self:
            return
        before = parent._aggregate()
        parent._counts[old] -= 1
        parent._counts[new] += 1
        after = parent._aggregate()
        if after is not before:
            _log_transition(parent.name, before, after, None)

    def status_counts(self) -> dict[str, int]:
        return {self._status.value: 1}

    def split(self) -> None:
        """A subjob is never split further."""

    @property
    def job_dict(self) -> dict[str, Any]:
        return {"id": self.id, "input_files": list(self.input_files), "args": list(self.args)}

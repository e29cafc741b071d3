"""Job spec files: a batch job described once, in TOML or YAML.

:func:`load_spec` reads a ``.toml``, ``.yaml`` or ``.yml`` file, checks every
field, and returns a :class:`JobSpec`; :meth:`JobSpec.to_job` turns it into a
:class:`~jobfleet.job.Job` with its subjobs already created. Any problem is one
:class:`~jobfleet.errors.SpecError` line, ``<file>: field '<dotted.field>': <why>``.

Paths (``input_files``, ``sandbox``, ``working_dir``, ``output_dir``) are taken
relative to the folder of the spec file. Defaults:

* ``working_dir``: ``<spec folder>/<name>``;
* ``output_dir``: ``<working_dir>/output``, so a job's outputs are collected
  next to its subjobs' working directories (``<working_dir>/0``, ``/1``, ...)
  and one directory holds everything of the job; subjob ``i`` collects into
  ``<output_dir>/i``;
* ``max_retries`` 0, ``max_failed_fraction`` 0.5, backend ``local``, no resources,
  no ``[split]`` (one job, no subjobs).

``[split]`` holds at most one of ``max_files_per_subjob``, ``max_subjobs`` and
``arguments``. With ``arguments`` (``range``, ``values`` or ``product``) every
subjob gets all input files and its generated arguments after ``args``.
Memory is parsed to megabytes (binary units, as schedulers count them: 1 GB =
1024 MB) and walltime to seconds (:func:`parse_memory_mb`, :func:`parse_walltime_s`).

Lists are lists, tables are tables and numbers are numbers: nothing is coerced,
except that ``[environment] set`` values may be numbers (made strings). A key
whose default is "none" (``working_dir``, ``output_dir``, ``split`` and its keys,
the ``[resources]`` values, ``environment``) may be written as null (YAML ``~``),
meaning not given; elsewhere null is a type error. ``name`` starts
with a letter, digit or ``_``. Sandbox entries are copied by their base name,
so two entries with the same name, an entry named like jobfleet's own files
(``submit.sh``, ``stdout``, ...), or a folder holding the working directory
are errors.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from jobfleet._gc import cycle_collector_paused
from jobfleet._spec_args import (
    BACKEND_NAMES,
    Scalar,
    SpecDoc,
    describe_validation_error,
    kind,
    parse_memory_mb,
    parse_walltime_s,
)
from jobfleet.errors import SpecError
from jobfleet.inputs import INPUT_DATA_FILE, glob_files, is_uri
from jobfleet.job import Job
from jobfleet.resources import Resources
from jobfleet.splitters import MaxFilesSplitter, MaxSubjobsSplitter, SubjobSplitter
from jobfleet.workdir import EXIT_CODE_FILE, STDERR_FILE, STDOUT_FILE, SUBMIT_SCRIPT

if TYPE_CHECKING:
    import yaml

__all__ = [
    "BACKEND_NAMES",
    "JobSpec",
    "Resources",
    "SplitSpec",
    "load_spec",
    "parse_memory_mb",
    "parse_spec_dict",
    "parse_walltime_s",
]

log = logging.getLogger("jobfleet.spec")

_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
# Files jobfleet writes into every working directory; a sandbox entry must not clobber them.
_RESERVED = {EXIT_CODE_FILE, STDOUT_FILE, STDERR_FILE, SUBMIT_SCRIPT, INPUT_DATA_FILE}


# -- the result -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How a job is split: ``mode`` is the ``[split]`` key that was given.

    ``limit`` holds the number for ``max_files_per_subjob`` / ``max_subjobs``;
    ``arguments`` holds, for ``arguments``, each subjob's generated arguments.
    """

    mode: Literal["max_files_per_subjob", "max_subjobs", "arguments"]
    limit: int | None = None
    arguments: list[list[Scalar]] | None = None


@dataclasses.dataclass
class JobSpec:
    """A checked job spec: paths absolute, ``input_files`` expanded, units converted."""

    path: Path
    name: str
    cmd: list[str]
    args: list[Scalar]
    input_files: list[str]
    sandbox: list[Path]
    output_patterns: list[str]
    setup: list[str]
    working_dir: Path
    output_dir: Path
    split: SplitSpec | None
    backend_name: str
    backend_options: dict[str, Any]
    resources: Resources
    max_retries: int
    max_failed_fraction: float
    environment: dict[str, Any]

    def to_job(self) -> Job:
        """A :class:`~jobfleet.job.Job` for this spec, with its subjobs already created.

        ``backend_args`` are the backend options plus ``"resources"``
        (:meth:`Resources.as_dict`), so they survive ``Job.job_dict`` as JSON.
        """
        job = Job(self.name)
        job.cmd = list(self.cmd)
        job.args = list(self.args)
        job.input_files = self.input_files
        job.input_sandbox_files = self.sandbox
        job.output_patterns = list(self.output_patterns)
        job.setup_cmds = list(self.setup)
        job.working_dir = self.working_dir
        job.output_dir = self.output_dir
        job.backend_args = {
            **copy.deepcopy(self.backend_options),
            "resources": self.resources.as_dict(),
        }
        self._apply_environment(job)
        with cycle_collector_paused():
            self._create_subjobs(job)
        log.debug("%s: job %r with %d subjobs", self.path, self.name, len(job.subjobs))
        return job

    def _create_subjobs(self, job: Job) -> None:
        split = self.split
        if split is not None and split.arguments is not None:
            for i, generated in enumerate(split.arguments):
                job.create_subjob(i, input_files=self.input_files, args=[*self.args, *generated])
        elif split is not None and split.limit is not None:
            splitter: SubjobSplitter
            if split.mode == "max_files_per_subjob":
                splitter = MaxFilesSplitter(max_files_per_subjob=split.limit)
            else:
                splitter = MaxSubjobsSplitter(max_subjobs=split.limit)
            job.splitter = splitter
            splitter.create_subjobs(job)

    def _apply_environment(self, job: Job) -> None:
        """``[environment]``: captured setup, forwarded and set variables, inheritance."""
        env = self.environment
        # Each step goes before the previous ones: the job's setup runs forwarded
        # variables, then explicit ones, then the captured setup, then its own lines.
        try:
            if env.get("capture") or env.get("site_setup"):
                site = env.get("site_setup") or []
                if env.get("capture"):
                    job.append_current_setup_cmds(site_setup=site)
                else:
                    job._prepend_setup(site)
            if env.get("set"):
                job.set_environment(env["set"])
            if env.get("forward"):
                job.forward_environment(env["forward"])
        except SpecError as err:
            raise SpecError(f"{self.path}: {err}") from None
        if env.get("inherit"):
            job.backend_args["inherit_env"] = True


# -- loading ----------------------------------------------------------------------------------


class _FieldError(Exception):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, reason)
        self.where = where
        self.reason = reason


def _spec_error(path: object, message: str) -> SpecError:
    return SpecError(f"{path}: {message}".replace("\r", "\\r").replace("\n", "\\n"))


def load_spec(path: str | os.PathLike[str]) -> JobSpec:
    """Read and check a job spec file (``.toml``, ``.yaml`` or ``.yml``); raises SpecError."""
    path = Path(os.path.abspath(path))
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise _spec_error(
            path, f"unknown spec format {suffix or '(no suffix)'!r}: use .toml or .yaml"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise _spec_error(path, f"cannot read it: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise _spec_error(path, f"not UTF-8 text (byte {err.start})") from None
    try:
        doc = _parse_toml(path, text) if suffix == ".toml" else _parse_yaml(path, text)
    except RecursionError:
        raise _spec_error(path, "the document is nested too deeply") from None
    return parse_spec_dict(doc, path)


def _parse_toml(path: Path, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message, at = str(err), _TOML_AT.search(str(err))
        where = f"line {at.group(1)}, column {at.group(2)}: " if at else ""
        raise _spec_error(path, f"{where}TOML syntax error: {_TOML_AT.sub('', message)}") from None


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml  # only YAML specs pay for importing it (every command loads this module)

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _spec_error(path, _describe_yaml_error(err)) from None


def _describe_yaml_error(err: yaml.YAMLError) -> str:
    import yaml

    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        problem = err.problem or str(err).splitlines()[0]
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


def parse_spec_dict(doc: Any, path: str | os.PathLike[str]) -> JobSpec:
    """Check an already parsed spec document; ``path`` is the spec file it came from.

    Relative paths in ``doc`` are taken relative to ``path``'s folder. Raises
    :class:`~jobfleet.errors.SpecError` for anything wrong, never another error.
    """
    path = Path(os.path.abspath(path))
    if not isinstance(doc, dict):
        raise _spec_error(path, f"field '(document)': a table of keys is required, got {kind(doc)}")
    try:
        checked = SpecDoc.model_validate(doc)
        spec = _build(checked, path)
    except ValidationError as err:
        raise _spec_error(path, describe_validation_error(err)) from None
    except _FieldError as err:
        raise _spec_error(path, f"field '{err.where}': {err.reason}") from None
    except RecursionError:
        raise _spec_error(path, "field '(document)': nested too deeply") from None
    log.debug("%s: loaded spec %r", path, spec.name)
    return spec


def _build(doc: SpecDoc, path: Path) -> JobSpec:
    spec_dir = path.parent
    working_dir = Path(os.path.abspath(spec_dir / (doc.working_dir or doc.name)))
    output_dir = (
        Path(os.path.abspath(spec_dir / doc.output_dir))
        if doc.output_dir
        else working_dir / "output"
    )
    input_files = _expand_inputs(doc.input_files, spec_dir)
    split: SplitSpec | None = None
    if doc.split is not None and doc.split.arguments is not None:
        split = SplitSpec("arguments", arguments=doc.split.arguments.subjob_arguments())
    elif doc.split is not None and doc.split.max_files_per_subjob is not None:
        split = SplitSpec("max_files_per_subjob", limit=doc.split.max_files_per_subjob)
    elif doc.split is not None and doc.split.max_subjobs is not None:
        split = SplitSpec("max_subjobs", limit=doc.split.max_subjobs)
    if split is not None and split.limit is not None and not input_files:
        raise _FieldError(f"split.{split.mode}", "splits input files, but input_files is empty")
    res = doc.resources
    return JobSpec(
        path=path,
        name=doc.name,
        cmd=list(doc.cmd),
        args=list(doc.args),
        input_files=input_files,
        sandbox=_check_sandbox(doc.sandbox, spec_dir, working_dir),
        output_patterns=list(doc.output_patterns),
        setup=list(doc.setup),
        working_dir=working_dir,
        output_dir=output_dir,
        split=split,
        backend_name=doc.backend.name,
        backend_options=dict(doc.backend.model_extra or {}),
        resources=Resources(
            cores=res.cores,
            memory_mb=res.memory,
            walltime_s=res.walltime,
            queue=res.queue,
            account=res.account,
            gpus=res.gpus,
            nodes=res.nodes,
            job_name=res.job_name,
            extra_directives=list(res.extra_directives),
        ),
        max_retries=doc.max_retries,
        max_failed_fraction=doc.max_failed_fraction,
        environment=doc.environment.model_dump(exclude_unset=True) if doc.environment else {},
    )


def _expand_inputs(patterns: list[str], spec_dir: Path) -> list[str]:
    """Globs expanded (each one's matches sorted, in the order written), duplicates dropped."""
    found: dict[str, None] = {}
    for i, pattern in enumerate(patterns):
        if is_uri(pattern):
            found.setdefault(pattern)
            continue
        try:
            matches = glob_files(pattern, str(spec_dir))
        except (OSError, ValueError) as err:
            raise _FieldError(f"input_files.{i}", f"cannot expand {pattern!r}: {err}") from None
        if not matches:
            raise _FieldError(f"input_files.{i}", f"{pattern!r} matches no file (in {spec_dir})")
        found.update(dict.fromkeys(matches))
    return list(found)


def _check_sandbox(entries: list[str], spec_dir: Path, working_dir: Path) -> list[Path]:
    """Sandbox paths made absolute; each must exist and get its own name in the working dir."""
    checked: dict[str, str] = {}
    paths: list[Path] = []
    for i, entry in enumerate(entries):
        where = f"sandbox.{i}"
        full = Path(os.path.abspath(spec_dir / entry))
        if not os.path.exists(full):
            raise _FieldError(where, f"{entry!r} does not exist ({full})")
        if not full.name:
            raise _FieldError(where, f"{entry!r} is the file system root")
        if full.name in _RESERVED:
            raise _FieldError(where, f"{entry!r} would overwrite jobfleet's own {full.name}")
        if full.name in checked:
            raise _FieldError(
                where, f"{entry!r} and {checked[full.name]!r} would both be copied to {full.name}"
            )
        if os.path.isdir(full) and working_dir.is_relative_to(full):
            raise _FieldError(where, f"{entry!r} holds the working directory {working_dir}")
        checked[full.name] = entry
        paths.append(full)
    return paths

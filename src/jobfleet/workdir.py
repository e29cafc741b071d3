"""Preparing a (sub)job's working directory, and collecting its outputs afterwards."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from jobfleet.errors import SpecError
from jobfleet.inputs import INPUT_DATA_FILE
from jobfleet.templating import comment_text, render

if TYPE_CHECKING:
    from jobfleet.job import Job

__all__ = [
    "EXIT_CODE_FILE",
    "STDERR_FILE",
    "STDOUT_FILE",
    "SUBMIT_SCRIPT",
    "check_job",
    "collect_outputs",
    "prepare",
    "read_exit_code",
    "render_wrapper",
]

log = logging.getLogger("jobfleet.workdir")

SUBMIT_SCRIPT = "submit.sh"
EXIT_CODE_FILE = "__BACKEND_CMD_EXIT_STATUS__"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
#: In a job's working directory: the input list (``[]``) its subjobs without input files
#: share, as hard links (see :func:`prepare`).
SHARED_EMPTY_INPUT_LIST = "__JOBFLEET_NO_INPUT_FILES__.json"
#: What the exit code file of a local unit holds before its exit code: ``running <pid>``
#: once it started, ``cancel ...`` if a cancel came first (see jobfleet.fleet.unitfiles).
RUNNING_MARKER = "running"
CANCEL_MARKER = "cancel"


def check_job(job: Job) -> None:
    """Reject a job description that cannot run, before anything is written."""
    if not isinstance(job.cmd, list | tuple) or not job.cmd:
        raise SpecError(f"{job!r}: field 'cmd': a non-empty list of strings is required")
    if not all(isinstance(part, str) for part in job.cmd):
        raise SpecError(f"{job!r}: field 'cmd': every element must be a string")
    if isinstance(job.setup_cmds, str) or not all(isinstance(s, str) for s in job.setup_cmds):
        raise SpecError(f"{job!r}: field 'setup_cmds': a list of strings is required")
    for pattern in job.output_patterns:
        if not isinstance(pattern, str) or not pattern:
            raise SpecError(f"{job!r}: field 'output_patterns': {pattern!r} is not a pattern")
        pure = PurePosixPath(pattern)
        if pure.is_absolute() or ".." in pure.parts:
            raise SpecError(
                f"{job!r}: field 'output_patterns': {pattern!r} "
                "points outside the working directory"
            )
    for entry in job.input_sandbox_files:
        if not entry.exists():
            raise SpecError(f"{job!r}: field 'input_sandbox_files': {entry} does not exist")


def render_wrapper(
    job: Job, directives: Sequence[str] = (), *, start_marker: bool = False, lost_race_exit: int = 0
) -> str:
    """The bash script that runs ``job``'s setup and command and records the exit code.

    With ``start_marker`` it first creates the exit code file exclusively,
    holding ``running <pid>``, and exits ``lost_race_exit`` without running
    anything if it exists: the local runner's launch protocol
    (:mod:`jobfleet.fleet.unitfiles`). The exit code replaces it at the end.

    The template is rendered once per distinct setup and directives, with
    holes where the name and the command go; each subjob only fills the holes
    (a big job renders 100,000s of wrappers that differ only there).
    """
    parts = _wrapper_parts(tuple(directives), tuple(job.setup_cmds), start_marker, lost_race_exit)
    if parts is None:  # a hole marker in the setup itself (never in practice): render it all
        return _render_wrapper(
            job.name, job.full_command, directives, job.setup_cmds, start_marker, lost_race_exit
        )
    head, middle, tail = parts
    return f"{head}{comment_text(job.name)}{middle}{job.full_command}{tail}"


# Random, so no setup line or directive can contain them by chance.
_NAME_HOLE = f"@jobfleet-name-{uuid.uuid4().hex}@"
_COMMAND_HOLE = f"@jobfleet-command-{uuid.uuid4().hex}@"


@functools.lru_cache(maxsize=64)
def _wrapper_parts(
    directives: tuple[str, ...],
    setup_cmds: tuple[str, ...],
    start_marker: bool,
    lost_race_exit: int,
) -> tuple[str, str, str] | None:
    """The wrapper split around the name and command holes, or ``None`` if that is ambiguous."""
    text = _render_wrapper(
        _NAME_HOLE, _COMMAND_HOLE, directives, setup_cmds, start_marker, lost_race_exit
    )
    if text.count(_NAME_HOLE) != 1 or text.count(_COMMAND_HOLE) != 1:
        return None
    head, rest = text.split(_NAME_HOLE)
    if _COMMAND_HOLE not in rest:
        return None
    middle, tail = rest.split(_COMMAND_HOLE)
    return head, middle, tail


def _render_wrapper(
    name: str,
    command: str,
    directives: Sequence[str],
    setup_cmds: Sequence[str],
    start_marker: bool,
    lost_race_exit: int,
) -> str:
    return render(
        "wrapper.sh.j2",
        directives=list(directives),
        start_marker=start_marker,
        running_marker=RUNNING_MARKER,
        lost_race_exit=lost_race_exit,
        name=name,
        exit_code_file=EXIT_CODE_FILE,
        setup_cmds=list(setup_cmds),
        command=command,
    )


def prepare(job: Job, script: str, *, workdir: str | None = None) -> None:
    """Create the working directory with sandbox copies, input list and wrapper script.

    Leftovers of an earlier attempt (exit code, stdout, stderr) are removed so
    they cannot be mistaken for this attempt's result. Subjobs without input
    files get their (empty) input list as a hard link to one read-only file in
    the job's working directory: a parameter scan of 10,000 subjobs then
    creates 10,000 files fewer, and creating files is most of what preparing a
    trivial subjob costs. ``workdir`` is ``job.working_dir`` as a string, for a
    caller that has it at hand (paths are strings here: this runs per subjob).
    """
    where = os.fspath(job.working_dir) if workdir is None else workdir
    try:
        os.mkdir(where)
    except FileNotFoundError:  # the job's directory is missing too
        os.makedirs(where)
    except FileExistsError:  # an earlier attempt may have left its results here
        # The input list too: it may be a link to the shared one, never to be rewritten.
        for name in (EXIT_CODE_FILE, STDOUT_FILE, STDERR_FILE, INPUT_DATA_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{where}/{name}")
    for entry in job.input_sandbox_files:
        if entry.is_dir():
            shutil.copytree(entry, os.path.join(where, entry.name), dirs_exist_ok=True)
        else:
            shutil.copy2(entry, os.path.join(where, entry.name))
    _write_input_list(job, where)
    _write(f"{where}/{SUBMIT_SCRIPT}", script, executable=True)


def _write_input_list(job: Job, workdir: str) -> None:
    path = f"{workdir}/{INPUT_DATA_FILE}"
    if not job.input_files and getattr(job, "parent", None) is not None:  # only a SubJob has one
        # A subjob's directory is always in its job's directory.
        shared = f"{os.path.dirname(workdir)}/{SHARED_EMPTY_INPUT_LIST}"
        try:
            _link_shared(shared, path)
            return
        except OSError as err:  # a file system without hard links: each its own file
            log.debug("%s: no hard link to %s (%s); writing it", path, shared, err)
    _write(path, json.dumps(job.input_files))


def _link_shared(shared: str, path: str) -> None:
    try:
        os.link(shared, path)
    except FileNotFoundError:  # the job's first such subjob: create it, complete at once
        partial = f"{os.path.dirname(shared)}/.{SHARED_EMPTY_INPUT_LIST}.{os.getpid()}"
        _write(partial, "[]")
        os.chmod(partial, 0o444)  # a job that writes into its input list gets an error
        os.replace(partial, shared)
        os.link(shared, path)


def _write(path: str, text: str, *, executable: bool = False) -> None:
    """Write ``text`` to ``path`` with plain os calls (a big job writes 100,000s of files).

    An executable gets mode 0755 whatever the umask or the mode of a file already there.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755 if executable else 0o666)
    try:
        if executable:
            os.fchmod(fd, 0o755)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    except OSError as err:  # os.write's errors (a full disk) do not name the file
        raise OSError(err.errno, err.strerror, path) from None
    finally:
        os.close(fd)


def read_exit_code(workdir: Path) -> int | None:
    """The exit code the wrapper recorded, or ``None`` if there is none (yet)."""
    # os calls, not Path.read_text: a local runner reads one per subjob as it ends.
    try:
        fd = os.open(os.path.join(workdir, EXIT_CODE_FILE), os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 256).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    if text.split(" ", 1)[0] in (RUNNING_MARKER, CANCEL_MARKER):  # a local unit's: not ended
        return None
    try:
        return int(text)
    except ValueError:
        log.warning("%s holds %r, not an exit code", workdir / EXIT_CODE_FILE, text[:40])
        return None


def _is_bookkeeping(name: str) -> bool:
    """Files jobfleet itself keeps in a working directory (not stdout / stderr)."""
    return name in (SUBMIT_SCRIPT, EXIT_CODE_FILE, INPUT_DATA_FILE) or name.startswith(
        "__JOBFLEET_"
    )


def collect_outputs(job: Job) -> list[Path]:
    """Copy the files matching ``output_patterns`` from the working to the output directory.

    Symbolic links that lead out of the working directory are not followed.
    """
    workdir, outdir = job.working_dir, job.output_dir
    if not job.output_patterns or workdir.resolve() == outdir.resolve():
        return []
    copied: list[Path] = []
    root, out = workdir.resolve(), outdir.resolve()
    for pattern in job.output_patterns:
        matches = sorted(workdir.glob(pattern))
        if not matches:
            log.warning("%s: output pattern %r matched nothing in %s", job.name, pattern, workdir)
        for source in matches:
            real = source.resolve()
            if not real.is_relative_to(root):
                log.warning("%s: not collecting %s: it leads outside %s", job.name, source, root)
                continue
            if real == out or out.is_relative_to(real) or real.is_relative_to(out):
                continue  # the output directory itself lives here: never copy it into itself
            if source.parent == workdir and _is_bookkeeping(source.name):
                continue  # jobfleet's own files are not the job's outputs
            target = outdir / source.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(source, target)
            copied.append(target)
    return copied

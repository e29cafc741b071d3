"""The software environment of a job: what it gets, what is captured and forwarded, checking it.

A job does not get the submitting process's environment unless asked to
(``inherit_env=True`` in ``backend_args``): it starts from the scheduler's
fresh-job environment (see the README's table), and
:meth:`~jobfleet.job.Job.append_current_setup_cmds` and the forwarding helpers
add, at submission time, exactly what it needs:

* an active Python virtualenv (``VIRTUAL_ENV``, or the venv this Python runs in),
* a conda / mamba environment (``CONDA_PREFIX``), activated by prefix,
* environment modules / Lmod (``LOADEDMODULES``), loaded again with ``module load``,
* site software releases: ``source`` lines given by the user (``site_setup``),
* forwarded variables (names or glob patterns) with their current values, set on
  the worker only when not set there already, and explicit ``KEY=value`` pairs.

Everything is written into the wrapper with shell quoting; values are never logged.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobfleet.errors import SpecError

__all__ = [
    "CLEAN_ENV_KEYS",
    "CLEAN_PATH",
    "SetupPart",
    "check_setup",
    "clean_environment",
    "detect_setup",
    "forward_lines",
    "process_environment",
    "set_lines",
]

log = logging.getLogger("jobfleet.environment")

#: PATH of a clean local job.
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Variables a clean local job keeps from the submitting process (identity and locale only).
CLEAN_ENV_KEYS = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def clean_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a clean local job."""
    source = os.environ if environ is None else environ
    env = {key: source[key] for key in CLEAN_ENV_KEYS if key in source}
    env["PATH"] = CLEAN_PATH
    return env


def process_environment(inherit: bool) -> dict[str, str] | None:
    """What to pass as ``env=`` to a local job's process (``None``: inherit everything)."""
    return None if inherit else clean_environment()


@dataclass(frozen=True, slots=True)
class SetupPart:
    """One detected piece of the submitting shell's software setup."""

    kind: str
    description: str
    commands: tuple[str, ...]


def _must_exist(path: str, what: str) -> None:
    if not Path(path).exists():
        raise SpecError(f"environment: {what} {path} does not exist on this host")


def _modules(env: Mapping[str, str]) -> SetupPart | None:
    modules = [m for m in env.get("LOADEDMODULES", "").split(":") if m]
    if not modules:
        return None
    commands = []
    if env.get("MODULESHOME"):
        # `module` is a shell function of interactive shells: define it in the job's shell.
        init = shlex.quote(f"{env['MODULESHOME']}/init/bash")
        commands.append(f"type module >/dev/null 2>&1 || source {init}")
    commands.append("module load " + " ".join(shlex.quote(m) for m in modules))
    return SetupPart("modules", f"modules {' '.join(modules)}", tuple(commands))


def _conda(env: Mapping[str, str]) -> SetupPart | None:
    prefix = env.get("CONDA_PREFIX")
    if not prefix:
        return None
    _must_exist(prefix, "conda environment")
    exe = env.get("CONDA_EXE") or env.get("MAMBA_EXE")
    if exe:
        _must_exist(exe, "conda executable")
        tool = "micromamba" if Path(exe).name.startswith("micromamba") else "conda"
        commands: tuple[str, ...] = (
            f'eval "$({shlex.quote(exe)} shell.bash hook)"',
            f"{tool} activate {shlex.quote(prefix)}",
        )
    else:  # no conda command known: put the environment first on PATH
        commands = (
            f'export PATH={shlex.quote(prefix + "/bin")}:"$PATH"',
            f"export CONDA_PREFIX={shlex.quote(prefix)}",
        )
    return SetupPart("conda", f"conda environment {prefix}", commands)


def _virtualenv(env: Mapping[str, str], python_prefix: str | None) -> SetupPart | None:
    venv = env.get("VIRTUAL_ENV")
    if not venv:
        prefix = python_prefix if python_prefix is not None else sys.prefix
        if prefix != sys.base_prefix and (Path(prefix) / "bin" / "activate").is_file():
            venv = prefix  # running from a venv that was never activated
    if not venv:
        return None
    activate = str(Path(venv) / "bin" / "activate")
    _must_exist(activate, "virtualenv activation script")
    return SetupPart("virtualenv", f"virtualenv {venv}", (f"source {shlex.quote(activate)}",))


def detect_setup(
    environ: Mapping[str, str] | None = None,
    *,
    site_setup: Sequence[str] = (),
    python_prefix: str | None = None,
) -> list[SetupPart]:
    """The setup commands that reproduce this process's software environment on a worker.

    In order: site setup lines, environment modules, conda, virtualenv (a venv
    activated last comes first on PATH, as it does here). Paths that do not
    exist here are an error: a setup that cannot work on the submit host will
    not work on a worker either.
    """
    env = os.environ if environ is None else environ
    parts: list[SetupPart] = []
    for line in site_setup:
        if not isinstance(line, str) or "\n" in line:
            raise SpecError("environment: field 'site_setup': one-line strings are required")
        words = shlex.split(line)
        if len(words) >= 2 and words[0] in ("source", "."):
            _must_exist(words[1], "site setup script")
        parts.append(SetupPart("site", line, (line,)))
    for part in (_modules(env), _conda(env), _virtualenv(env, python_prefix)):
        if part is not None:
            parts.append(part)
    for part in parts:
        log.info("captured %s: %s", part.kind, part.description)
    return parts


def forward_lines(patterns: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Lines exporting the current values of the variables matching ``patterns``.

    Each is exported only when the worker has not set it already. A pattern
    without wildcards that matches nothing is an error (a typo would go unseen).
    """
    env = os.environ if environ is None else environ
    lines: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise SpecError(f"environment: field 'forward': {pattern!r} is not a name or pattern")
        names = sorted(n for n in env if fnmatch.fnmatchcase(n, pattern) and _NAME.match(n))
        if not names and not any(c in pattern for c in "*?["):
            raise SpecError(f"environment: field 'forward': {pattern} is not set here")
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            lines.append(f'[ -n "${{{name}+set}}" ] || export {name}={shlex.quote(env[name])}')
    log.info("forwarding %d variable(s): %s", len(seen), ", ".join(sorted(seen)))
    return lines


def set_lines(values: Mapping[str, object]) -> list[str]:
    """Lines exporting explicit values."""
    lines = []
    for name, value in values.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError(f"environment: field 'set': {name!r} is not a variable name")
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return lines


def check_setup(
    setup_cmds: Sequence[str], cmd: Sequence[str], sandbox_names: Iterable[str] = ()
) -> list[str]:
    """Run the setup lines in a clean shell here; return one line per problem found.

    Checks that every setup line succeeds, that a captured virtualenv / conda
    environment really is active afterwards, and that the command's first word
    resolves (a sandbox file, or a program on the resulting PATH).
    """
    problems: list[str] = []
    script = ["set +e"]
    for number, line in enumerate(setup_cmds, start=1):
        script.append(f'{{ {line}\n}} >/dev/null 2>&1 || echo "setup-failed {number}"')
    script += ['echo "venv=${VIRTUAL_ENV:-}"', 'echo "conda=${CONDA_PREFIX:-}"']
    first = cmd[0] if cmd else ""
    if first and "/" not in first:
        script.append(f"command -v -- {shlex.quote(first)} >/dev/null || echo 'cmd-missing'")
    proc = subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-c", "\n".join(script)],
        env=clean_environment(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    seen = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    for line in proc.stdout.splitlines():
        if line.startswith("setup-failed "):
            number = int(line.split()[1])
            problems.append(f"setup line {number} fails in a clean shell: {setup_cmds[number - 1]}")
    for line in setup_cmds:
        words = shlex.split(line) if line.startswith("source ") else []
        if words[-1:] and words[-1].endswith("/bin/activate"):
            venv = str(Path(words[-1]).parent.parent)
            if seen.get("venv") != venv:
                problems.append(f"virtualenv {venv} is not active after the setup")
    if first.startswith("/"):
        if not os.access(first, os.X_OK):
            problems.append(f"command {first} does not exist or is not executable here")
    elif "/" in first:  # relative to the working directory: it must come with the sandbox
        top = Path(first).parts[0]  # pathlib drops a leading "./"
        if top not in set(sandbox_names):
            problems.append(f"command {first} is a relative path but {top} is not in the sandbox")
    elif "cmd-missing" in proc.stdout.splitlines():
        problems.append(
            f"command {first!r} is not found on the job's PATH after the setup "
            "(an alias or shell function of your interactive shell does not reach jobs)"
        )
    return problems

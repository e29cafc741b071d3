"""The backends of the conformance suite, and what every one of them must produce.

Adding a backend is one line in :data:`BACKENDS`. Everything a test expects is
defined once here, the same for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AWKWARD_SUBJOBS",
    "BACKENDS",
    "EXIT_CODE",
    "FIXED_ARGS",
    "Case",
    "expected_argv",
    "expected_outputs",
]


@dataclass(frozen=True)
class Case:
    """One backend in the suite.

    ``backend``: the name in the spec's ``[backend]``; ``options``: more TOML lines
    there; ``walltime``: of the timeout job, the smallest the scheduler honours
    (it enforces its own unit); ``fake``: a fake personality to run against;
    ``needs``: a session fixture that skips (or fails in CI) when the real
    scheduler is not there; ``env``: extra environment of the jobfleet commands;
    ``fake_config``: settings of the fake's personality.
    """

    id: str
    backend: str
    walltime: str
    options: str = ""
    fake: str | None = None
    needs: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    fake_config: tuple[tuple[str, float], ...] = ()


# fmt: off
BACKENDS = [
    Case("local", "local", "00:00:05", options="max_processes = 8"),
    Case("slurm", "slurm", "00:01:00", needs="slurm_cluster"),  # --time has minutes
    Case("sge", "sge", "00:00:05", needs="sge_cell"),
    Case("sge-fake", "sge", "00:00:05", fake="sge"),
    Case("htcondor", "htcondor", "00:00:05", fake="htcondor"),
    Case("lsf", "lsf", "00:01:00", fake="lsf"),  # -W has minutes
    Case("openpbs", "pbs", "00:00:05", 'flavour = "openpbs"', "pbs",
         env=(("FAKESCHED_PBS_FLAVOUR", "openpbs"),)),
    Case("torque", "pbs", "00:00:05", 'flavour = "torque"', "pbs",
         env=(("FAKESCHED_PBS_FLAVOUR", "torque"),)),
    # CPUTime: at least 100 (JobDescription/MinCPUTime); the fake's CPU-time
    # normalisation makes 100 of it 5 s of wall clock.
    Case("dirac", "dirac", "00:01:40", fake="dirac", fake_config=(("seconds_per_cpu_time", 0.05),)),
]
# fmt: on

#: The spec's ``args``: before every subjob's own arguments.
FIXED_ARGS = ["fixed arg", ""]
#: One inner list per subjob (``[split] arguments = {values = ...}``): what shells,
#: schedulers' argument syntaxes and JDL parameter expansion could mangle.
AWKWARD_SUBJOBS: list[list[str]] = [
    ["s0", "plain", "with space", "  two  spaces  ", ""],
    ["s1", "it's", 'say "hi"', "$HOME", "${USER}", "`touch pwned`", "$(touch pwned)"],
    ["s2", "a;b", "; touch pwned;", "a&&b|c", "line1\nline2", "tab\there", "back\\slash", "'"],
    ["s3", '"', "x" * 3000],
    ["s4", "ünïcødé ✓", "*", "?", "[x]", "~", "--opt=--x", "-n", "%s", "%(name)s", "100%"],
    ["s5", "{a,b}", "#hash", "x=y", "<in", ">out", "!bang", "é\u00a0nbsp"],
]
#: The exit code of the failing job, and its reason on every backend.
EXIT_CODE = 3


def expected_argv(subjob: int) -> bytes:
    """What the program must have received (argv[1:], NUL-separated, UTF-8)."""
    return "\0".join([*FIXED_ARGS, *AWKWARD_SUBJOBS[subjob]]).encode()


def expected_outputs(subjob: int) -> dict[str, bytes]:
    """The files collected into ``output_dir/<subjob>``, by name."""
    argv = expected_argv(subjob)
    return {"argv.bin": argv, "result.txt": f"{len(argv)}\n".encode()}

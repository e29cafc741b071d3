"""Bad input: malformed job JSON and spec files are refused with one line naming the field,
and hostile argument strings reach the program untouched, executing nothing."""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.conftest import Result
from jobfleet import Job, Local, SpecError, monitor_jobs
from jobfleet.jobdoc import parse_job_dict
from jobfleet.store import Store
from reliability_report import Reliability

VALID_JOB: dict[str, Any] = {
    "name": "scan",
    "input_sandbox_files": ["run.py"],
    "working_dir": "work",
    "output_dir": "out",
    "output_patterns": ["*.json"],
    "cmd": ["python3", "run.py"],
    "args": ["--fast", 3],
    "input_files": ["a.txt"],
    "setup_cmds": ["export A=1"],
    "backend_args": {"queue": "short"},
    "subjobs": [{"id": 0, "input_files": ["a.txt"], "args": [1]}],
}

# Values of the wrong kind for every field: wrong types, nested garbage, unicode, NaN.
_GARBAGE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def test_job_json_fuzz(reliability: Reliability) -> None:
    """Hypothesis replaces one field of a valid job JSON document (or adds an unknown one) with
    garbage: every document is either accepted and valid, or refused with a SpecError whose one
    line names that field; nothing else is ever raised."""
    tried: list[str] = []
    malformed: list[str] = []
    wrong: list[str] = []

    @settings(
        max_examples=300,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(key=st.sampled_from([*VALID_JOB, "unknown_key", "subjobs.0"]), value=_GARBAGE)
    def check(key: str, value: Any) -> None:
        doc = copy.deepcopy(VALID_JOB)
        if key == "subjobs.0":
            doc["subjobs"] = [value]
        else:
            doc[key] = value
        tried.append(key)
        try:
            parsed = parse_job_dict(doc)
        except SpecError as err:
            malformed.append(key)
            message = str(err)
            top = key.split(".")[0]
            if "\n" in message or not message.startswith(f"field '{top}"):
                wrong.append(f"{key}={value!r}: {message}")
            return
        except Exception as err:  # anything else is the bug being hunted
            wrong.append(f"{key}={value!r}: unhandled {type(err).__name__}: {err}")
            return
        # Accepted: the result must itself be a valid document, and survive JSON.
        if parse_job_dict(json.loads(json.dumps(parsed))) != parsed:
            wrong.append(f"{key}={value!r}: accepted but does not round-trip")

    check()
    reliability.record(
        cases=len(tried),
        unit="documents",
        faults=len(malformed),
        lost=len(wrong),
        detail="one field of a valid job JSON replaced by hypothesis-generated garbage",
    )
    assert not wrong, wrong[:5]
    assert malformed, "no document was refused: the fuzzing did not exercise anything"


@pytest.mark.parametrize(
    ("field", "value", "named", "why"),
    [
        # Found by the fuzzing above (hypothesis 6.170): NaN was accepted, and is not equal
        # to itself after a JSON round trip; nor can a scheduler be given it.
        ("backend_args", {"g2": [[1, None, float("nan")]]}, "backend_args.g2", "finite"),
        ("args", [1, float("inf")], "args.1", "finite"),
        ("backend_args", {"x": {1: "y"}}, "backend_args.x", "keys must be strings"),
        ("args", ["a\x00b"], "args.0", "NUL"),
    ],
)
def test_job_json_values_that_do_not_survive_json_are_refused(
    field: str, value: Any, named: str, why: str
) -> None:
    doc = {**copy.deepcopy(VALID_JOB), field: value}
    with pytest.raises(SpecError, match=f"^field '{re.escape(named)}': .*{why}"):
        parse_job_dict(doc)


SPEC_HEAD = 'name = "bad"\ncmd = ["python3", "-c", "pass"]\n'
BAD_SPECS: list[tuple[str, str]] = [
    ("[resources]\ncores = -1\n", "resources.cores"),
    ("[resources]\ncores = 0\n", "resources.cores"),
    ('[resources]\nmemory = "-1GB"\n', "resources.memory"),
    ('[resources]\nwalltime = "99:99:99x"\n', "resources.walltime"),
    ("[resources]\ncores = 100000000000000000000\n", "resources.cores"),
    ('[resources]\nqueue = "short\\n#SBATCH --x"\n', "resources.queue"),
    ('output_patterns = ["../x"]\n', "output_patterns.0"),
    ('output_patterns = ["/etc/*"]\n', "output_patterns.0"),
    ('output_patterns = ["**/../../x"]\n', "output_patterns.0"),
    ('sandbox = ["/etc/passwd/../../nowhere"]\n', "sandbox.0"),
    ('[backend]\nname = "local"\nmax_proceses = 2\n', "max_proceses"),
    ('[backend]\nname = "slurm"\narray_limt = 2\n', "array_limt"),
    ('[backend]\nname = "htcondor"\nhold_timout = 60\n', "hold_timout"),
    ('[backend]\nname = "sge"\nparallel_enviroment = "mpi"\n', "parallel_enviroment"),
    ('[split]\nmax_subjobs = "3"\n', "split.max_subjobs"),
    ('[resources]\nwalltime = "\\u00e9:00"\n', "resources.walltime"),
]


def test_cli_refuses_bad_specs(
    jf: Callable[..., Result],
    db: Path,
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """`jobfleet submit` on spec files with out-of-range resources, bad walltime/memory strings,
    output patterns leaving the working area, and a misspelt backend option: exit code non-zero,
    exactly one `error:` line naming the field, no traceback, and no job in the store."""
    failures: list[str] = []
    for i, (body, field) in enumerate(BAD_SPECS):
        spec = tmp_path / f"bad{i}.toml"
        spec.write_text(SPEC_HEAD + body, encoding="utf-8")
        result = jf("submit", str(spec), "--no-runner")
        try:
            line = result.error_line
        except AssertionError as err:
            failures.append(f"{body!r}: {err}")
            continue
        if result.code == 0 or field not in line:
            failures.append(f"{body!r}: exit {result.code}: {line}")
    stored = 0
    if db.exists():
        with Store(db) as store:
            stored = len(store.list_jobs())
    reliability.record(
        cases=len(BAD_SPECS),
        unit="documents",
        faults=len(BAD_SPECS),
        lost=len(failures) + stored,
        detail="jobfleet submit on malformed spec files",
    )
    assert not failures, failures
    assert stored == 0


HOSTILE = [
    "$(touch {canary})",
    "`touch {canary}`",
    ";touch {canary}",
    "' ; touch {canary} ; '",
    '" ; touch {canary} ; "',
    "a\ntouch {canary}",
    "&& touch {canary} #",
    "| touch {canary}",
    "${{IFS}}touch${{IFS}}{canary}",
    "ünïcødé ✓ \u202e",
    "x" * 10_000,
    "",
    "-",
    "%s %n {{}} \\",
]


def test_local_hostile_arguments(tmp_path: Path, reliability: Reliability) -> None:
    """A local job whose arguments are shell metacharacters, newlines, unicode and a 10,000-char
    string: the program receives each argument byte for byte and the canary file that every
    hostile argument tries to create never appears."""
    canary = tmp_path / "pwned"
    args = [h.format(canary=canary) for h in HOSTILE]
    job = Job("hostile")
    job.working_dir = str(tmp_path / "work dir $(x)")
    job.output_dir = str(tmp_path / "out")
    job.cmd = [
        sys.executable,
        "-c",
        "import json, sys; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))",
    ]
    job.args = args
    Local(max_processes=1).submit(job)
    monitor_jobs([job], heartbeat=0.2)
    written = (
        Path(job.working_dir, "0", "argv.json")
        if job.subjobs
        else Path(job.working_dir, "argv.json")
    )
    got: list[str] = json.loads(written.read_text()) if written.exists() else []
    differ = sum(1 for a, b in zip(args, got, strict=False) if a != b) + abs(len(args) - len(got))
    reliability.record(
        backend="local",
        cases=len(args),
        unit="strings",
        faults=len(args),
        lost=differ + int(canary.exists()),
        detail="hostile arguments; canary file must not appear",
    )
    assert job.status == "completed"
    assert not canary.exists()
    assert got == args

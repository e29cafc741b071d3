"""The job spec loader: every field, every split mode, defaults, errors, and a fuzz property."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import value_paths
from jobfleet import Job, Local, SpecError, monitor_jobs
from jobfleet.environment import detect_setup
from jobfleet.spec import (
    JobSpec,
    Resources,
    SplitSpec,
    load_spec,
    parse_spec_dict,
)
from jobfleet.splitters import ARGUMENTS_SPLITTER_HARD_CAP, MaxFilesSplitter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# -- helpers ----------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    """A tiny TOML writer: top-level tables as [sections], deeper ones inline."""
    lines = [
        f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)
    ]
    for key, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines.extend(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def write_spec(folder: Path, doc: dict[str, Any], name: str = "spec.toml") -> Path:
    path = folder / name
    text = to_toml(doc) if name.endswith(".toml") else yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def make_files(folder: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n")
        paths.append(path)
    return paths


def load_doc(folder: Path, doc: dict[str, Any]) -> JobSpec:
    return load_spec(write_spec(folder, doc))


def spec_error(folder: Path, doc: Any, name: str = "spec.toml") -> str:
    """The message of the SpecError that parsing ``doc`` (as if from ``folder/name``) raises."""
    with pytest.raises(SpecError) as info:
        parse_spec_dict(doc, folder / name)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / name}: ")
    return message


def subjob_args(job: Job) -> list[list[Any]]:
    return [job.subjobs[i].args for i in sorted(job.subjobs)]


def subjob_files(job: Job) -> list[list[str]]:
    return [job.subjobs[i].input_files for i in sorted(job.subjobs)]


MINIMAL: dict[str, Any] = {"name": "job", "cmd": ["python3", "run.py"]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_files(tmp_path, ["run.py", "data/b.txt", "data/a.txt", "data/c.txt", "data/skip.dat"])
    return tmp_path


def full_doc() -> dict[str, Any]:
    return {
        "name": "scan",
        "cmd": ["python3", "run.py"],
        "args": ["--fast", 3, 1.5, True],
        "input_files": ["data/*.txt", "root://host//store/x.root"],
        "sandbox": ["run.py"],
        "output_patterns": ["*.json", "out/**"],
        "setup": ["export LC_ALL=C", "echo ready"],
        "working_dir": "work/scan",
        "output_dir": "out/scan",
        "max_retries": 2,
        "max_failed_fraction": 0.25,
        "split": {"max_files_per_subjob": 2},
        "resources": {
            "cores": 4,
            "memory": "2GB",
            "walltime": "01:30:00",
            "queue": "short",
            "account": "abc",
            "gpus": 1,
            "nodes": 2,
            "job_name": "scan-1",
            "extra_directives": ["--constraint=x"],
        },
        "backend": {"name": "slurm", "max_processes": 2, "partition": "p", "opts": {"a": [1]}},
        "environment": {"capture": True, "forward": ["HOME"], "set": {"OMP_NUM_THREADS": "1"}},
    }


# -- every field ------------------------------------------------------------------------------


def test_every_field(folder: Path) -> None:
    spec = load_doc(folder, full_doc())
    assert spec.path == folder / "spec.toml"
    assert spec.name == "scan"
    assert spec.cmd == ["python3", "run.py"]
    assert spec.args == ["--fast", 3, 1.5, True]
    data = folder / "data"
    assert spec.input_files == [
        str(data / "a.txt"),
        str(data / "b.txt"),
        str(data / "c.txt"),
        "root://host//store/x.root",
    ]
    assert spec.sandbox == [folder / "run.py"]
    assert spec.output_patterns == ["*.json", "out/**"]
    assert spec.setup == ["export LC_ALL=C", "echo ready"]
    assert spec.working_dir == folder / "work" / "scan"
    assert spec.output_dir == folder / "out" / "scan"
    assert spec.max_retries == 2
    assert spec.max_failed_fraction == 0.25
    assert spec.split == SplitSpec("max_files_per_subjob", limit=2)
    assert spec.resources == Resources(
        cores=4,
        memory_mb=2048,
        walltime_s=5400,
        queue="short",
        account="abc",
        gpus=1,
        nodes=2,
        job_name="scan-1",
        extra_directives=["--constraint=x"],
    )
    assert spec.backend_name == "slurm"
    assert spec.backend_options == {"max_processes": 2, "partition": "p", "opts": {"a": [1]}}
    assert spec.environment == {
        "capture": True,
        "forward": ["HOME"],
        "set": {"OMP_NUM_THREADS": "1"},
    }


def test_to_job_sets_everything_and_round_trips_through_json(folder: Path) -> None:
    spec = load_doc(folder, full_doc())
    job = spec.to_job()
    assert job.name == "scan"
    assert job.cmd == spec.cmd
    assert job.args == spec.args
    assert job.input_files == spec.input_files
    assert job.input_sandbox_files == spec.sandbox
    assert job.output_patterns == spec.output_patterns
    captured = [line for part in detect_setup() for line in part.commands]
    assert job.setup_cmds == [
        f'[ -n "${{HOME+set}}" ] || export HOME={shlex.quote(os.environ["HOME"])}',
        "export OMP_NUM_THREADS=1",
        *captured,
        *spec.setup,
    ]
    assert job.working_dir == spec.working_dir
    assert job.output_dir == spec.output_dir
    assert job.backend_args == {
        "max_processes": 2,
        "partition": "p",
        "opts": {"a": [1]},
        "resources": {
            "cores": 4,
            "memory_mb": 2048,
            "walltime_s": 5400,
            "queue": "short",
            "account": "abc",
            "gpus": 1,
            "nodes": 2,
            "job_name": "scan-1",
            "extra_directives": ["--constraint=x"],
        },
    }
    assert isinstance(job.splitter, MaxFilesSplitter)
    assert subjob_files(job) == [spec.input_files[:2], spec.input_files[2:]]
    again = Job(job.name, job_dict=json.loads(json.dumps(job.job_dict)))
    assert again.job_dict == job.job_dict
    assert Resources.from_dict(again.backend_args["resources"]) == spec.resources


def test_to_job_does_not_share_mutable_state(folder: Path) -> None:
    spec = load_doc(folder, full_doc())
    job = spec.to_job()
    job.backend_args["opts"]["a"].append(2)
    job.backend_args["resources"]["extra_directives"].append("--x")
    job.cmd.append("more")
    assert spec.backend_options["opts"] == {"a": [1]}
    assert spec.resources.extra_directives == ["--constraint=x"]
    assert spec.cmd == ["python3", "run.py"]
    assert spec.to_job().job_dict != job.job_dict


def test_defaults(folder: Path) -> None:
    spec = load_doc(folder, MINIMAL)
    assert spec.args == [] and spec.input_files == [] and spec.sandbox == []
    assert spec.output_patterns == [] and spec.setup == []
    assert spec.working_dir == folder / "job"
    assert spec.output_dir == folder / "job" / "output"
    assert spec.max_retries == 0
    assert spec.max_failed_fraction == 0.5
    assert spec.split is None
    assert spec.backend_name == "local"
    assert spec.backend_options == {}
    assert spec.resources == Resources()
    assert spec.environment == {}
    job = spec.to_job()
    assert job.subjobs == {}
    assert job.splitter is None
    assert job.backend_args == {"resources": {"extra_directives": []}}


def test_output_dir_defaults_under_the_given_working_dir(folder: Path) -> None:
    spec = load_doc(folder, {**MINIMAL, "working_dir": "w/x"})
    assert spec.working_dir == folder / "w" / "x"
    assert spec.output_dir == folder / "w" / "x" / "output"


def test_absolute_working_and_output_dirs_are_kept(folder: Path, tmp_path_factory: Any) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    doc = {**MINIMAL, "working_dir": str(elsewhere / "w"), "output_dir": str(elsewhere / "o")}
    spec = load_doc(folder, doc)
    assert (spec.working_dir, spec.output_dir) == (elsewhere / "w", elsewhere / "o")


def test_environment_keeps_only_what_was_written_and_numbers_become_strings(folder: Path) -> None:
    spec = load_doc(folder, {**MINIMAL, "environment": {"set": {"N": 4, "X": 0.5}}})
    assert spec.environment == {"set": {"N": "4", "X": "0.5"}}


def test_spec_file_relative_path_is_made_absolute(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(folder, {**MINIMAL, "input_files": ["data/a.txt"]})
    monkeypatch.chdir(folder)
    spec = load_spec("spec.toml")
    assert spec.path == folder / "spec.toml"
    assert spec.input_files == [str(folder / "data" / "a.txt")]


def test_integer_fraction_and_null_resources(folder: Path) -> None:
    doc = {**MINIMAL, "max_failed_fraction": 1, "resources": {"cores": None, "gpus": 0}}
    spec = load_spec(write_spec(folder, doc, "spec.yaml"))
    assert spec.max_failed_fraction == 1.0
    assert spec.resources == Resources(gpus=0)


# -- input files ------------------------------------------------------------------------------


def test_input_globs_are_sorted_per_pattern_deduplicated_and_uris_kept(folder: Path) -> None:
    make_files(folder, ["more/z.txt", "more/deep/y.txt"])
    doc = {
        **MINIMAL,
        "input_files": [
            "more/**/*.txt",
            "data/c.txt",
            "data/*.txt",
            "file:///nowhere/x",
            str(folder / "data" / "a.txt"),
        ],
    }
    spec = load_doc(folder, doc)
    assert spec.input_files == [
        str(folder / "more/deep/y.txt"),
        str(folder / "more/z.txt"),
        str(folder / "data/c.txt"),
        str(folder / "data/a.txt"),
        str(folder / "data/b.txt"),
        "file:///nowhere/x",
    ]


def test_input_glob_skips_directories(folder: Path) -> None:
    spec = load_doc(folder, {**MINIMAL, "input_files": ["*"]})
    assert spec.input_files == [str(folder / "run.py"), str(folder / "spec.toml")]


def test_spec_folder_with_glob_characters(tmp_path: Path) -> None:
    folder = tmp_path / "odd[1]"
    make_files(folder, ["d/x.txt"])
    spec = load_doc(folder, {**MINIMAL, "input_files": ["d/*.txt"]})
    assert spec.input_files == [str(folder / "d" / "x.txt")]


def test_glob_matching_nothing_is_named(folder: Path) -> None:
    message = spec_error(folder, {**MINIMAL, "input_files": ["data/*.txt", "nope/*.root"]})
    assert "field 'input_files.1': 'nope/*.root' matches no file" in message


# -- splitting --------------------------------------------------------------------------------


def test_max_files_per_subjob(folder: Path) -> None:
    spec = load_doc(
        folder,
        {
            **MINIMAL,
            "args": ["-v"],
            "input_files": ["data/*.txt"],
            "split": {"max_files_per_subjob": 2},
        },
    )
    job = spec.to_job()
    assert subjob_files(job) == [spec.input_files[:2], spec.input_files[2:]]
    assert subjob_args(job) == [["-v"], ["-v"]]


def test_max_subjobs_eleven_files_over_four(folder: Path) -> None:
    make_files(folder, [f"many/f{i:02d}.txt" for i in range(11)])
    spec = load_doc(folder, {**MINIMAL, "input_files": ["many/*.txt"], "split": {"max_subjobs": 4}})
    assert spec.split == SplitSpec("max_subjobs", limit=4)
    job = spec.to_job()
    assert [len(files) for files in subjob_files(job)] == [3, 3, 3, 2]
    assert [f for files in subjob_files(job) for f in files] == spec.input_files


@pytest.mark.parametrize(
    ("range_", "generated"),
    [
        ([0, 100, 25], [0, 25, 50, 75]),
        ([0, 3], [0, 1, 2]),
        ([5, 0, -2], [5, 3, 1]),
        ([-2, 1, 1], [-2, -1, 0]),
    ],
)
def test_arguments_range(folder: Path, range_: list[int], generated: list[int]) -> None:
    doc = {
        **MINIMAL,
        "args": ["--fast"],
        "input_files": ["data/*.txt"],
        "split": {"arguments": {"range": range_}},
    }
    spec = load_doc(folder, doc)
    job = spec.to_job()
    assert subjob_args(job) == [["--fast", value] for value in generated]
    assert subjob_files(job) == [spec.input_files] * len(generated)
    assert job.args == ["--fast"]


def test_arguments_values(folder: Path) -> None:
    doc = {
        **MINIMAL,
        "args": ["-x"],
        "split": {"arguments": {"values": [[1, "a"], [2, "b"], "solo", [], [True, 0.5]]}},
    }
    job = load_doc(folder, doc).to_job()
    assert subjob_args(job) == [
        ["-x", 1, "a"],
        ["-x", 2, "b"],
        ["-x", "solo"],
        ["-x"],
        ["-x", True, 0.5],
    ]
    assert subjob_files(job) == [[]] * 5


def test_arguments_product_in_key_order(folder: Path) -> None:
    doc = {
        **MINIMAL,
        "input_files": ["data/a.txt"],
        "split": {"arguments": {"product": {"seed": [7, 8, 9], "energy": [1, 2]}}},
    }
    job = load_doc(folder, doc).to_job()
    assert subjob_args(job) == [[7, 1], [7, 2], [8, 1], [8, 2], [9, 1], [9, 2]]
    assert subjob_files(job) == [[str(folder / "data/a.txt")]] * 6


def test_arguments_product_from_toml_text(folder: Path) -> None:
    text = """
name = "scan"
cmd = ["python3", "run.py"]
args = ["--fast"]
[split]
arguments = { product = { energy = [1, 2], seed = [7, 8, 9] } }
"""
    (folder / "spec.toml").write_text(text)
    job = load_spec(folder / "spec.toml").to_job()
    assert subjob_args(job) == [["--fast", e, s] for e in (1, 2) for s in (7, 8, 9)]
    assert [job.subjobs[i].name for i in sorted(job.subjobs)] == [f"scan_{i}" for i in range(6)]


def test_null_means_not_given(folder: Path) -> None:
    doc = {
        **MINIMAL,
        "split": {"max_subjobs": None, "arguments": {"range": [0, 2], "values": None}},
    }
    job = load_spec(write_spec(folder, doc, "spec.yaml")).to_job()
    assert subjob_args(job) == [[0], [1]]


def test_empty_split_table_means_no_split(folder: Path) -> None:
    spec = load_doc(folder, {**MINIMAL, "input_files": ["data/*.txt"], "split": {}})
    assert spec.split is None
    assert spec.to_job().subjobs == {}


def test_arguments_up_to_the_cap(folder: Path) -> None:
    doc = {**MINIMAL, "split": {"arguments": {"range": [0, ARGUMENTS_SPLITTER_HARD_CAP]}}}
    spec = parse_spec_dict(doc, folder / "spec.toml")
    assert spec.split is not None and spec.split.arguments is not None
    assert len(spec.split.arguments) == ARGUMENTS_SPLITTER_HARD_CAP


# -- YAML -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_yaml_equals_toml(folder: Path, suffix: str) -> None:
    doc = full_doc()
    doc["split"] = {"arguments": {"product": {"energy": [1, 2.5], "seed": [7, 8]}}}
    from_toml = load_spec(write_spec(folder, doc, "spec.toml"))
    from_yaml = load_spec(write_spec(folder, doc, "spec" + suffix))
    assert dataclasses.replace(from_yaml, path=from_toml.path) == from_toml
    assert from_yaml.to_job().job_dict == from_toml.to_job().job_dict


def test_yaml_unquoted_walltime_and_memory(folder: Path) -> None:
    text = "name: j\ncmd: [python3]\nresources:\n  walltime: 1:30:00\n  memory: 2GiB\n"
    (folder / "j.yaml").write_text(text)
    resources = load_spec(folder / "j.yaml").resources
    assert (resources.walltime_s, resources.memory_mb) == (5400, 2048)


# -- errors -----------------------------------------------------------------------------------

ERROR_CASES: list[tuple[dict[str, Any], str, str]] = [
    # (changes to MINIMAL, field, part of the reason)
    ({"name": None}, "name", "required"),
    ({"cmd": None}, "cmd", "required"),
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"working-dir": "w"}, "working-dir", "did you mean 'working_dir'"),
    ({"name": 5}, "name", "got an integer"),
    ({"name": "a b"}, "name", "letters, digits"),
    ({"name": "a/b"}, "name", "letters, digits"),
    ({"name": ".."}, "name", "not starting with '.'"),
    ({"name": "-x"}, "name", "not starting with '.' or '-'"),
    ({"name": ""}, "name", "letters, digits"),
    ({"name": "x" * 101}, "name", "1-100"),
    ({"cmd": []}, "cmd", "non-empty list"),
    ({"cmd": [""]}, "cmd", "non-empty list"),
    ({"cmd": "python3 run.py"}, "cmd", "a list is required"),
    ({"cmd": ["python3", 1]}, "cmd.1", "a string is required"),
    ({"args": "x"}, "args", "a list is required"),
    ({"args": [{"a": 1}]}, "args.0", "a string, number or boolean"),
    ({"args": [float("nan")]}, "args.0", "finite"),
    ({"input_files": "data/*.txt"}, "input_files", "a list is required"),
    ({"input_files": [""]}, "input_files.0", "non-empty path"),
    ({"input_files": ["a\x00b"]}, "input_files.0", "NUL"),
    ({"setup": ["ok", 3]}, "setup.1", "a string is required"),
    ({"output_patterns": ["/abs/*.json"]}, "output_patterns.0", "inside the working directory"),
    ({"output_patterns": ["../up.json"]}, "output_patterns.0", "inside the working directory"),
    ({"output_patterns": ["a/../../b"]}, "output_patterns.0", "inside the working directory"),
    ({"output_patterns": ["."]}, "output_patterns.0", "inside the working directory"),
    ({"output_patterns": [""]}, "output_patterns.0", "inside the working directory"),
    ({"working_dir": ""}, "working_dir", "non-empty path"),
    ({"output_dir": 3}, "output_dir", "a string is required"),
    ({"max_retries": -1}, "max_retries", "greater than or equal to 0"),
    ({"max_retries": "1"}, "max_retries", "an integer is required"),
    ({"max_retries": 1.0}, "max_retries", "an integer is required"),
    ({"max_retries": True}, "max_retries", "an integer is required"),
    ({"max_failed_fraction": 0}, "max_failed_fraction", "0 < x <= 1"),
    ({"max_failed_fraction": 1.5}, "max_failed_fraction", "0 < x <= 1"),
    ({"max_failed_fraction": True}, "max_failed_fraction", "0 < x <= 1"),
    ({"max_failed_fraction": "0.5"}, "max_failed_fraction", "0 < x <= 1"),
    ({"split": []}, "split", "a table is required"),
    ({"split": {"chunks": 2}}, "split.chunks", "unknown key"),
    ({"split": {"max_subjobs": 2, "max_files_per_subjob": 1}}, "split", "at most one"),
    (
        {"split": {"max_subjobs": 2, "arguments": {"range": [0, 2]}}},
        "split",
        "max_subjobs and arguments",
    ),
    ({"split": {"max_subjobs": 0}}, "split.max_subjobs", "greater than or equal to 1"),
    ({"split": {"max_files_per_subjob": "2"}}, "split.max_files_per_subjob", "an integer"),
    ({"split": {"max_files_per_subjob": 2}}, "split.max_files_per_subjob", "input_files is empty"),
    ({"split": {"arguments": {}}}, "split.arguments", "exactly one of range, values, product"),
    (
        {"split": {"arguments": {"range": [0, 2], "values": [1]}}},
        "split.arguments",
        "got range, values",
    ),
    (
        {"split": {"arguments": {"ranges": [0, 2]}}},
        "split.arguments.ranges",
        "did you mean 'range'",
    ),
    ({"split": {"arguments": {"range": [5]}}}, "split.arguments.range", "[start, stop]"),
    ({"split": {"arguments": {"range": [0, 1, 1, 1]}}}, "split.arguments.range", "got 4 numbers"),
    ({"split": {"arguments": {"range": [0, 5, 0]}}}, "split.arguments.range", "step must not be 0"),
    ({"split": {"arguments": {"range": [5, 0]}}}, "split.arguments.range", "gives no subjobs"),
    ({"split": {"arguments": {"range": [0, 1.5]}}}, "split.arguments.range.1", "an integer"),
    (
        {"split": {"arguments": {"range": [0, 10**30]}}},
        "split.arguments.range",
        "more than the limit",
    ),
    ({"split": {"arguments": {"values": []}}}, "split.arguments.values", "gives no subjobs"),
    ({"split": {"arguments": {"values": [[1, [2]]]}}}, "split.arguments.values.0", "got a list"),
    ({"split": {"arguments": {"values": "abc"}}}, "split.arguments.values", "a list is required"),
    ({"split": {"arguments": {"product": {}}}}, "split.arguments.product", "at least one key"),
    (
        {"split": {"arguments": {"product": {"e": [1], "s": []}}}},
        "split.arguments.product",
        "'s' has no values",
    ),
    (
        {"split": {"arguments": {"product": {"e": 1}}}},
        "split.arguments.product.e",
        "a list is required",
    ),
    (
        {"split": {"arguments": {"product": {"a": list(range(400)), "b": list(range(400))}}}},
        "split.arguments.product",
        "more than the limit",
    ),
    ({"resources": 5}, "resources", "a table is required"),
    ({"resources": {"cpus": 1}}, "resources.cpus", "did you mean 'gpus'"),
    ({"resources": {"cores": 0}}, "resources.cores", "greater than or equal to 1"),
    ({"resources": {"cores": "2"}}, "resources.cores", "an integer is required"),
    ({"resources": {"memory": "-2GB"}}, "resources.memory", "more than 0"),
    ({"resources": {"memory": -5}}, "resources.memory", "more than 0"),
    ({"resources": {"memory": "lots"}}, "resources.memory", "not a number"),
    ({"resources": {"walltime": "1:99"}}, "resources.walltime", "below 60"),
    ({"resources": {"walltime": "soon"}}, "resources.walltime", "HH:MM:SS"),
    ({"resources": {"walltime": 0}}, "resources.walltime", "more than 0"),
    ({"resources": {"gpus": -1}}, "resources.gpus", "greater than or equal to 0"),
    ({"resources": {"nodes": 0}}, "resources.nodes", "greater than or equal to 1"),
    ({"resources": {"queue": "a b"}}, "resources.queue", "without spaces"),
    ({"resources": {"account": ""}}, "resources.account", "without spaces"),
    ({"resources": {"job_name": "my job"}}, "resources.job_name", "letters, digits"),
    ({"resources": {"extra_directives": "--x"}}, "resources.extra_directives", "a list"),
    ({"resources": {"extra_directives": ["a\nb"]}}, "resources.extra_directives.0", "single line"),
    ({"backend": "slurm"}, "backend", "a table is required"),
    ({"backend": {"name": "nope"}}, "backend.name", "'local', 'slurm'"),
    ({"backend": {"resources": {"cores": 1}}}, "backend.resources", "[resources] table"),
    ({"backend": {"opts": {"k": {1: 2}}}}, "backend.opts", "keys must be strings"),
    ({"backend": {"opts": {1, 2}}}, "backend.opts", "JSON-like"),
    ({"environment": {"capture": "yes"}}, "environment.capture", "true or false"),
    ({"environment": {"forward": ["HOME", 1]}}, "environment.forward.1", "variable name"),
    ({"environment": {"set": {"1A": "x"}}}, "environment.set.1A", "variable name"),
    ({"environment": {"set": {"A": True}}}, "environment.set.A", "a string is required"),
    ({"environment": {"unset": ["A"]}}, "environment.unset", "unknown key"),
    ({"sandbox": ["missing.py"]}, "sandbox.0", "'missing.py' does not exist"),
    ({"sandbox": ["run.py", "data/../run.py"]}, "sandbox.1", "both be copied to run.py"),
    ({"sandbox": ["."]}, "sandbox.0", "holds the working directory"),
    ({"sandbox": ["stdout"]}, "sandbox.0", "overwrite jobfleet's own stdout"),
]


@pytest.mark.parametrize(("changes", "field", "reason"), ERROR_CASES)
def test_errors_name_the_field(
    folder: Path, changes: dict[str, Any], field: str, reason: str
) -> None:
    (folder / "stdout").write_text("")
    doc = {**MINIMAL, **changes}
    doc = {key: value for key, value in doc.items() if value is not None}
    message = spec_error(folder, doc)
    assert message.startswith(f"{folder / 'spec.toml'}: field '{field}': "), message
    assert reason in message, message


@pytest.mark.parametrize("doc", [[], "name = x", 3, None, [MINIMAL]])
def test_document_must_be_a_table(folder: Path, doc: Any) -> None:
    assert "field '(document)': a table of keys is required" in spec_error(folder, doc)


def test_non_string_top_level_key(folder: Path) -> None:
    assert "keys must be strings" in spec_error(folder, {**MINIMAL, 1: "x"})


def test_unknown_top_level_key_lists_the_known_ones(folder: Path) -> None:
    message = spec_error(folder, {**MINIMAL, "zzzzzz": 1})
    assert "field 'zzzzzz': unknown key (known keys: name, cmd, args," in message


# -- file-level errors ------------------------------------------------------------------------


def _file_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read it: No such file or directory" in _file_error(tmp_path / "nope.toml")


def test_directory_is_not_a_spec(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").mkdir()
    assert "cannot read it" in _file_error(tmp_path / "dir.toml")


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("{}")
    assert "unknown spec format '.json'" in _file_error(tmp_path / "spec.json")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_bytes(b'name = "\xff\xfe"\n')
    assert "not UTF-8 text" in _file_error(tmp_path / "spec.toml")


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_text('name = "x"\ncmd = ["a"\nargs = 3\n')
    message = _file_error(tmp_path / "spec.toml")
    assert ": line 3, column" in message and "TOML syntax error" in message


def test_toml_duplicate_key(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_text('name = "x"\nname = "y"\n')
    assert "TOML syntax error" in _file_error(tmp_path / "spec.toml")


def test_toml_datetime_is_a_type_error(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_text('name = "x"\ncmd = ["a"]\nargs = [1979-05-27]\n')
    assert "field 'args.0': a string, number or boolean is required, got a date" in _file_error(
        tmp_path / "spec.toml"
    )


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("name: x\ncmd: [a\nargs: 3\n")
    message = _file_error(tmp_path / "spec.yaml")
    assert "YAML syntax error" in message and ": line " in message


@pytest.mark.parametrize(
    "text",
    [
        "name: x\n---\nname: y\n",
        "name: !!python/object:os.system x\ncmd: [a]\n",
        "? [1, 2]\n: x\n",
        "a: &a [*a]\nname: x\ncmd: [x]\nbackend: {opts: *a}\n",
        "name: x\ncmd: [a]\nargs: !!set {a, b}\n",
        "",
        "\t",
        "[" * 5000,
    ],
)
def test_odd_yaml_gives_a_spec_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "spec.yml").write_text(text)
    _file_error(tmp_path / "spec.yml")


def test_deeply_nested_toml(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    _file_error(tmp_path / "spec.toml")


def test_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_bytes(b'\xef\xbb\xbfname = "x"\ncmd = ["a"]\n')
    assert load_spec(tmp_path / "spec.toml").name == "x"


# -- Resources --------------------------------------------------------------------------------


def test_resources_as_dict_drops_none_and_round_trips() -> None:
    resources = Resources(cores=2, walltime_s=60, extra_directives=["-x"])
    assert resources.as_dict() == {"cores": 2, "walltime_s": 60, "extra_directives": ["-x"]}
    assert Resources.from_dict(resources.as_dict()) == resources
    assert Resources.from_dict({}) == Resources()


# -- the property: load or SpecError, never anything else -------------------------------------

_KEYS = [
    *full_doc(),
    "range",
    "values",
    "product",
    "arguments",
    "max_subjobs",
    "memory",
    "walltime",
    "cores",
    "capture",
    "set",
]
# No "/": a random absolute glob like "/**" would walk the whole file system.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="/\\"), max_size=10)
_KEY = st.sampled_from(_KEYS) | _TEXT
_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | _TEXT
    | st.sampled_from(
        ["data/*.txt", "run.py", "*", "**", "2GB", "01:00:00", "local", "slurm", "-1", ".", ".."]
    )
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    make_files(folder, ["run.py", "data/a.txt", "data/b.txt", "data/c.txt"])
    return folder


def _check_loads_or_spec_error(load: Callable[[], JobSpec]) -> None:
    try:
        spec = load()
    except SpecError as err:
        assert "\n" not in str(err)
        return
    job = spec.to_job()
    again = Job(job.name, job_dict=json.loads(json.dumps(job.job_dict)))
    assert again.job_dict["subjobs"] == job.job_dict["subjobs"] or _has_nan(job.job_dict)


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(doc=st.dictionaries(_KEY, _JSON, max_size=8))
def test_property_random_documents(fuzz_dir: Path, doc: dict[Any, Any]) -> None:
    _check_loads_or_spec_error(lambda: parse_spec_dict(doc, fuzz_dir / "spec.toml"))


def _mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(value_paths(doc)[1:]))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(_JSON)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(_KEY)] = data.draw(_JSON)
        else:
            parent.append(data.draw(_JSON))
        if not doc:
            break
    return doc


def _valid_doc() -> dict[str, Any]:
    doc = full_doc()
    doc["input_files"] = ["data/*.txt"]
    doc["split"] = {"arguments": {"product": {"energy": [1, 2], "seed": [7, 8, 9]}}}
    return doc


def test_valid_fuzz_base(fuzz_dir: Path) -> None:
    assert len(parse_spec_dict(_valid_doc(), fuzz_dir / "spec.toml").to_job().subjobs) == 6


# Edited documents in memory are fuzzed, stricter (the message must name the edited
# field), by tests/badinput/test_loaders.py; here they go through the file formats.
@_SETTINGS
@given(data=st.data(), fmt=st.sampled_from(["spec.yaml", "spec.toml"]))
def test_property_mutated_valid_spec_as_file(fuzz_dir: Path, data: st.DataObject, fmt: str) -> None:
    doc = _mutate(_valid_doc(), data)
    try:
        text = to_toml(doc) if fmt.endswith(".toml") else yaml.safe_dump(doc)
    except (TypeError, yaml.YAMLError):
        return  # not writable in that format (e.g. None in TOML)
    (fuzz_dir / fmt).write_text(text, encoding="utf-8")
    _check_loads_or_spec_error(lambda: load_spec(fuzz_dir / fmt))


@_SETTINGS
@given(text=st.text(max_size=200), fmt=st.sampled_from(["t.yaml", "t.toml"]))
def test_property_random_text(fuzz_dir: Path, text: str, fmt: str) -> None:
    (fuzz_dir / fmt).write_text(text, encoding="utf-8", errors="surrogatepass")
    _check_loads_or_spec_error(lambda: load_spec(fuzz_dir / fmt))


# -- the examples -----------------------------------------------------------------------------


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the examples, so running them leaves examples/work alone."""
    copy_ = tmp_path / "examples"
    copy_.mkdir()
    for name in ("quickstart.toml", "scan.toml", "count_words.py", "scan.py"):
        shutil.copy2(EXAMPLES / name, copy_ / name)
    shutil.copytree(EXAMPLES / "data", copy_ / "data")
    return copy_


def test_examples_load_from_the_repository() -> None:
    quick = load_spec(EXAMPLES / "quickstart.toml")
    assert quick.working_dir == EXAMPLES / "work" / quick.name
    assert len(quick.input_files) == 6
    assert [len(files) for files in subjob_files(quick.to_job())] == [2, 2, 2]
    scan = load_spec(EXAMPLES / "scan.toml")
    assert scan.working_dir == EXAMPLES / "work" / "scan"
    assert subjob_args(scan.to_job()) == [
        ["--label", "demo", energy, seed] for energy in (1.0, 2.5) for seed in (7, 8, 9)
    ]


def _run(spec: JobSpec) -> Job:
    job = spec.to_job()
    backend = Local(max_processes=spec.backend_options["max_processes"])
    try:
        backend.submit(job)
        assert monitor_jobs([job], heartbeat=0.5) == 0
    finally:
        backend.shutdown()
    return job


def test_quickstart_example_runs(examples: Path) -> None:
    spec = load_spec(examples / "quickstart.toml")
    job = _run(spec)
    assert spec.output_dir == spec.working_dir / "output"
    words = 0
    for i, files in enumerate(subjob_files(job)):
        result = json.loads((spec.output_dir / str(i) / "counts.json").read_text())
        assert sorted(result["files"]) == files
        words += result["total_words"]
    expected = sum(len(Path(f).read_text().split()) for f in spec.input_files)
    assert words == expected


def test_scan_example_runs(examples: Path) -> None:
    spec = load_spec(examples / "scan.toml")
    job = _run(spec)
    results = [
        json.loads((spec.output_dir / str(i) / "result.json").read_text())
        for i in sorted(job.subjobs)
    ]
    assert [(r["label"], r["energy"], r["seed"]) for r in results] == [
        ("demo", energy, seed) for energy in (1.0, 2.5) for seed in (7, 8, 9)
    ]

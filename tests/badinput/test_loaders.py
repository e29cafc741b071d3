"""Fuzzing the two loaders (spec files and job JSON) with malformed documents.

Each document is a valid one with one to three random edits (a value replaced
by garbage, a key deleted, an unknown key added). Either the loader accepts it
and the result is a valid job, or it raises :class:`SpecError` whose one-line
message names the field it rejects, and that field is one that was edited.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import value_paths
from jobfleet import Job, SpecError
from jobfleet.spec import parse_spec_dict
from reliability_report import Reliability

_FIELD = re.compile(r"field '([^']*)'")
# No "/" or "\\": a random absolute glob like "/**" would walk the whole file system.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="/\\"), max_size=12)
_HOSTILE = st.sampled_from(
    ["$(touch canary)", "`id`", ";rm -rf ~", "'", '"', "a\nb", "x\x00y", "é☃", "z" * 10_000,
     "-1", "-1GB", "99:99:99x", "0", "", "..", "../x", "/etc/*", "**/../../x"]
)  # fmt: skip
_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT | _HOSTILE
_GARBAGE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Tally:
    """What a fuzz run saw; ``wrong`` holds the documents handled badly."""

    tried: int = 0
    rejected: int = 0
    wrong: list[str] = field(default_factory=list)


def _mutate(doc: dict[str, Any], data: st.DataObject) -> tuple[dict[str, Any], set[str]]:
    """``doc`` with 1-3 random edits, and the top-level keys they touched."""
    doc = copy.deepcopy(doc)
    touched: set[str] = set()
    for _ in range(data.draw(st.integers(1, 3))):
        choices = value_paths(doc)[1:]
        if not choices:
            break
        path = data.draw(st.sampled_from(choices))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(_GARBAGE)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            key = data.draw(_TEXT.filter(bool))
            parent[key] = data.draw(_GARBAGE)
            if parent is doc:
                path = (key,)
        else:
            parent.append(data.draw(_GARBAGE))
        touched.add(str(path[0]))
    return doc, touched


# A field whose check depends on another one: emptying input_files makes the split wrong.
_DEPENDS = {"input_files": ("split",)}


def _one_line(text: str) -> str:
    """``text`` as the loaders quote it in a one-line message."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _judge(tally: Tally, touched: set[str], load: Callable[[], Job | None]) -> None:
    """Run one load; count it, and note it in ``tally.wrong`` if it was mishandled."""
    tally.tried += 1
    try:
        job = load()
    except SpecError as err:
        tally.rejected += 1
        message = str(err)
        named = _FIELD.search(message)
        if "\n" in message or named is None:
            tally.wrong.append(f"message does not name a field: {message[:200]!r}")
        elif touched and not any(
            named.group(1).startswith(_one_line(k))
            or named.group(1).split(".")[0] in _DEPENDS.get(k, ())
            for k in touched
        ):
            tally.wrong.append(f"names {named.group(1)!r}, edited {sorted(touched)}")
        return
    except Exception as err:  # an unhandled exception is what this looks for
        tally.wrong.append(f"{type(err).__name__}: {str(err)[:200]}")
        return
    if job is not None:
        # Accepted: it must survive a round trip through its own JSON.
        again = Job(job.name, job_dict=json.loads(json.dumps(job.job_dict)))
        if again.job_dict != job.job_dict:
            tally.wrong.append(f"accepted {job.name!r} does not round-trip")


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("badinput-loaders")
    (folder / "data").mkdir()
    for name in ("run.py", "data/a.txt", "data/b.txt", "data/c.txt"):
        (folder / name).write_text(name + "\n", encoding="utf-8")
    return folder


def _valid_spec() -> dict[str, Any]:
    return {
        "name": "scan",
        "cmd": ["python3", "run.py"],
        "args": ["--fast", 3],
        "input_files": ["data/*.txt"],
        "sandbox": ["run.py"],
        "output_patterns": ["*.json"],
        "setup": ["echo ready"],
        "max_retries": 1,
        "split": {"max_files_per_subjob": 2},
        "resources": {"cores": 2, "memory": "2GB", "walltime": "01:00:00", "queue": "short"},
        "backend": {"name": "local", "max_processes": 2},
        "environment": {"forward": ["HOME"], "set": {"A": "1"}},
    }


def _valid_job_dict(area: Path) -> dict[str, Any]:
    return {
        "name": "scan",
        "working_dir": str(area / "work"),
        "output_dir": str(area / "out"),
        "output_patterns": ["*.json"],
        "cmd": ["python3", "run.py"],
        "args": ["--fast", 3],
        "input_files": ["a.txt", "b.txt"],
        "setup_cmds": ["echo ready"],
        "backend_args": {"cores": 2},
        "subjobs": [{"id": 0, "input_files": ["a.txt"], "args": [1]}, {"id": 1, "args": [2]}],
    }


SPEC_TALLY = Tally()
JSON_TALLY = Tally()


@_SETTINGS
@given(data=st.data())
def test_fuzz_spec_loader(area: Path, data: st.DataObject) -> None:
    """Hypothesis: an edited spec loads as a valid job or is refused naming the field."""
    doc, touched = _mutate(_valid_spec(), data)
    _judge(SPEC_TALLY, touched, lambda: parse_spec_dict(doc, area / "spec.toml").to_job())
    assert not SPEC_TALLY.wrong, SPEC_TALLY.wrong[-1]


def test_spec_loader_fuzz_figures(reliability: Reliability) -> None:
    """Mutated spec documents: every one is accepted as a valid job or rejected naming the field.

    Runs after the hypothesis property above and reports what it tried.
    """
    reliability.record(
        cases=SPEC_TALLY.tried, unit="documents", faults=SPEC_TALLY.rejected,
        lost=len(SPEC_TALLY.wrong), detail="valid spec, 1-3 random edits (hypothesis)",
    )  # fmt: skip
    assert SPEC_TALLY.tried >= 50
    assert SPEC_TALLY.rejected > SPEC_TALLY.tried // 4  # the edits really were malformed
    assert not SPEC_TALLY.wrong


@_SETTINGS
@given(data=st.data())
def test_fuzz_job_json_loader(area: Path, data: st.DataObject, tmp_path: Path) -> None:
    """Hypothesis: edited job JSON loads (Job.from_json) or is refused naming the field."""
    doc, touched = _mutate(_valid_job_dict(area), data)
    path = area / "job.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    _judge(JSON_TALLY, touched, lambda: Job.from_json(path))
    assert not JSON_TALLY.wrong, JSON_TALLY.wrong[-1]


def test_job_json_loader_fuzz_figures(reliability: Reliability) -> None:
    """Mutated job JSON files: every one loads as a valid job or is rejected naming the field.

    Runs after the hypothesis property above (``Job.from_json``) and reports what it tried.
    """
    reliability.record(
        cases=JSON_TALLY.tried, unit="documents", faults=JSON_TALLY.rejected,
        lost=len(JSON_TALLY.wrong), detail="valid job JSON with 1-3 random edits (hypothesis)",
    )  # fmt: skip
    assert JSON_TALLY.tried >= 50
    assert JSON_TALLY.rejected > JSON_TALLY.tried // 4
    assert not JSON_TALLY.wrong

"""Input paths: normalising them, and expanding globs the way glob.glob does (files only)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobfleet.inputs import glob_files, normalise_input


def _reference(pattern: str, base: Path) -> list[str]:
    """What glob.glob finds (recursive, files only, absolute, sorted): the behaviour to keep."""
    full = pattern if os.path.isabs(pattern) else os.path.join(glob.escape(str(base)), pattern)
    return sorted(os.path.abspath(m) for m in glob.iglob(full, recursive=True) if os.path.isfile(m))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Files, hidden files, a directory matching the pattern, links to a file, a dir and nothing."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "dir.root").mkdir()
    for name in ["a.root", "b.root", "c.txt", ".hidden.root", "x[1].root", "sub/d.root"]:
        (data / name).write_text("x")
    (data / "link.root").symlink_to(data / "a.root")
    (data / "dirlink.root").symlink_to(data / "sub")
    (data / "broken.root").symlink_to(data / "missing")
    return tmp_path


@pytest.mark.parametrize(
    "pattern",
    [
        "data/*.root",
        "data/*",
        "data/.*",
        "data/?.root",
        "data/[ab].root",
        "data/x[[]1].root",
        "data/**/*.root",
        "data/**",
        "*/*.root",
        "data/a.root",
        "data/missing/*.root",
        "data/a.root/*",
        "./data/../data/*.txt",
        "data//*.root",
    ],
)
def test_glob_files_finds_what_glob_finds(tree: Path, pattern: str) -> None:
    assert glob_files(pattern, str(tree)) == _reference(pattern, tree)


def test_glob_files_with_an_absolute_pattern_and_brackets_in_the_base(tmp_path: Path) -> None:
    base = tmp_path / "run[3]"
    base.mkdir()
    (base / "f1.dat").write_text("x")
    (base / "f2.dat").write_text("x")
    expected = [str(base / "f1.dat"), str(base / "f2.dat")]
    assert glob_files("*.dat", str(base)) == expected
    assert glob_files(str(base / "f?.dat").replace("[3]", "[[]3]"), "/") == expected


def test_glob_files_keeps_only_files(tree: Path) -> None:
    found = glob_files("data/*.root", str(tree))
    names = [Path(p).name for p in found]
    assert names == ["a.root", "b.root", "link.root", "x[1].root"]  # no dirs, no broken link


_PATH_TEXT = st.text(alphabet="/.ab", max_size=12)


@given(_PATH_TEXT)
def test_normalise_input_is_abspath_for_paths(text: str) -> None:
    if text:
        assert normalise_input(text) == os.path.abspath(text)


@pytest.mark.parametrize("uri", ["root://eos.cern.ch//a/b.root", "LFN:/belle/x.root", "file:///a"])
def test_normalise_input_keeps_uris(uri: str) -> None:
    assert normalise_input(uri) == uri

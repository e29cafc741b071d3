"""Single spec values: memory and walltime notations, strings, scalars, JSON-like options."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobfleet._spec_values import (
    check_json_like,
    check_scalar,
    check_text,
    parse_memory_mb,
    parse_walltime_s,
)

# -- memory and walltime ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "megabytes"),
    [
        (512, 512),
        ("512", 512),
        ("2GB", 2048),
        ("2gb", 2048),
        ("2 GiB", 2048),
        ("2G", 2048),
        ("1.5GB", 1536),
        ("100MB", 100),
        ("100mib", 100),
        ("2048KB", 2),
        ("1KiB", 1),
        ("1TB", 1024 * 1024),
        ("0.5TiB", 512 * 1024),
    ],
)
def test_parse_memory(value: int | str, megabytes: int) -> None:
    assert parse_memory_mb(value) == megabytes


@pytest.mark.parametrize(
    "value", [0, -1, "0GB", "-2GB", "lots", "2XB", "GB", "", 2.5, True, None, [1]]
)
def test_parse_memory_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_memory_mb(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3600, 3600),
        ("3600", 3600),
        ("01:00:00", 3600),
        ("48:00:00", 172800),
        ("10:30", 630),
        ("1-02:03:04", 93784),
        (" 00:00:01 ", 1),
    ],
)
def test_parse_walltime(value: int | str, seconds: int) -> None:
    assert parse_walltime_s(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        0,
        -5,
        "0:00",
        "00:00:00",
        "1:60",
        "1:60:00",
        "1-24:00:00",
        "1-01:00",
        "1h",
        "",
        1.5,
        False,
        None,
    ],
)
def test_parse_walltime_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="walltime"):
        parse_walltime_s(value)


@given(
    days=st.integers(min_value=0, max_value=999),
    hours=st.integers(min_value=0, max_value=23),
    minutes=st.integers(min_value=0, max_value=59),
    seconds=st.integers(min_value=0, max_value=59),
)
def test_walltime_notations_agree(days: int, hours: int, minutes: int, seconds: int) -> None:
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total == 0:
        return
    assert parse_walltime_s(f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}") == total
    assert parse_walltime_s(f"{days * 24 + hours}:{minutes:02d}:{seconds:02d}") == total
    assert parse_walltime_s(str(total)) == total


@given(st.integers(min_value=1, max_value=2**40))
def test_memory_units_are_binary(kilobytes: int) -> None:
    assert parse_memory_mb(f"{kilobytes}KB") == math.ceil(kilobytes / 1024)
    assert parse_memory_mb(f"{kilobytes} GiB") == kilobytes * 1024


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (check_text, 3, "a string is required, got an integer"),
        (check_text, "a\x00b", "NUL"),
        (check_scalar, float("nan"), "a finite number"),
        (check_scalar, [1], "a string, number or boolean is required, got a list"),
        (check_json_like, {1: "x"}, "table keys must be strings, got an integer 1"),
        (check_json_like, {"x": {1, 2}}, "JSON-like value is required, got a set"),
    ],
)
def test_value_checks_say_what_is_wrong(check: Any, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check(value)


def test_json_like_refuses_deep_nesting() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than 32 levels deep"):
        check_json_like(deep)
    assert check_json_like({"a": [1, 2.5, None, {"b": True}]}) == {"a": [1, 2.5, None, {"b": True}]}

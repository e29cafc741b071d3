"""Checks and parsers of single spec values, with no schema library involved.

Strings, scalars and JSON-like values as a spec may hold them, and the memory
and walltime notations (``"2GB"``, ``"1-12:00:00"``). Each raises
:class:`ValueError` with a message meant to follow ``field '...': ``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

__all__ = [
    "Scalar",
    "check_json_like",
    "check_scalar",
    "check_text",
    "kind",
    "parse_memory_mb",
    "parse_walltime_s",
]

Scalar = str | int | float | bool

#: How deep backend options may nest.
_MAX_DEPTH = 32

# Megabytes (binary, as schedulers count them) per unit; no unit means megabytes.
_MEMORY_UNITS = {
    "k": Fraction(1, 1024),
    "m": Fraction(1),
    "g": Fraction(1024),
    "t": Fraction(1024**2),
}
_MEMORY = re.compile(
    r"([-+]?\d{1,24}(?:\.\d{0,24})?|[-+]?\.\d{1,24})\s*(?:([kmgt])(?:i?b)?)?", re.IGNORECASE
)
_WALLTIME = re.compile(r"(?:(\d{1,9})-)?(\d{1,12}):(\d{1,12})(?::(\d{1,12}))?")


def kind(value: object) -> str:
    """How a value is called in TOML/YAML terms, for error messages."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names.update({list: "a list", dict: "a table", type(None): "null"})
    return names.get(type(value), f"a {type(value).__name__}")


def check_text(value: Any) -> str:
    """A string without NUL characters."""
    if not isinstance(value, str):
        raise ValueError(f"a string is required, got {kind(value)}")
    if "\x00" in value:
        raise ValueError("a string must not contain NUL characters")
    return value


def check_scalar(value: Any) -> Scalar:
    """A string, integer, finite float or boolean: something that can be a command argument."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a finite number is required, got {value}")
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, bool | int | float):
        return value
    raise ValueError(f"a string, number or boolean is required, got {kind(value)}")


def check_json_like(value: Any, depth: int = 0) -> Any:
    """A value that survives a JSON round trip: null, scalars, lists and string-keyed tables."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return check_scalar(value)
    if isinstance(value, list | tuple):  # a tuple: set from Python, stored as a list
        return [check_json_like(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"table keys must be strings, got {kind(key)} {key!r}")
        return {key: check_json_like(item, depth + 1) for key, item in value.items()}
    raise ValueError(f"a JSON-like value is required, got {kind(value)}")


def parse_memory_mb(value: int | str) -> int:
    """Megabytes in a memory value: an int (MB) or a string like ``"2GB"``, ``"512 MiB"``.

    Units (case-insensitive): K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB;
    none means MB. Units are binary, as batch schedulers count them
    (1 GB = 1 GiB = 1024 MB); fractions of a megabyte are rounded up. The
    result must be > 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"memory must be an integer (MB) or a string like '2GB', got {kind(value)}"
        )
    if isinstance(value, int):
        megabytes = Fraction(value)
    else:
        match = _MEMORY.fullmatch(value.strip())
        if match is None:
            raise ValueError(
                f"memory {value!r} is not a number with an optional unit (KB, MB, GB, TB, KiB, ...)"
            )
        number = match.group(1)
        unit = (match.group(2) or "m").lower()
        megabytes = Fraction(number + "0" if number.endswith(".") else number) * _MEMORY_UNITS[unit]
    if megabytes <= 0:
        raise ValueError(f"memory must be more than 0, got {value!r}")
    return math.ceil(megabytes)


def parse_walltime_s(value: int | str) -> int:
    """Seconds in a walltime: an int, or ``"HH:MM:SS"``, ``"MM:SS"``, ``"D-HH:MM:SS"``.

    A string of digits counts as seconds too. Minutes and seconds after the first
    field must be below 60, hours after a day below 24. The result must be > 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"walltime must be seconds or 'HH:MM:SS', got {kind(value)}")
    if isinstance(value, int):
        seconds = value
    elif value.strip().isdecimal() and len(value.strip()) <= 12:
        seconds = int(value.strip())
    else:
        seconds = _parse_clock(value)
    if seconds <= 0:
        raise ValueError(f"walltime must be more than 0 seconds, got {value!r}")
    return seconds


def _parse_clock(value: str) -> int:
    match = _WALLTIME.fullmatch(value.strip())
    if match is None or (match.group(1) is not None and match.group(4) is None):
        raise ValueError(
            f"walltime {value!r} is not 'HH:MM:SS', 'MM:SS', 'D-HH:MM:SS' or a number of seconds"
        )
    days, first, second, third = match.groups()
    if third is None:  # MM:SS
        hours, minutes, seconds = 0, int(first), int(second)
    else:
        hours, minutes, seconds = int(first), int(second), int(third)
        if minutes >= 60:
            raise ValueError(f"walltime {value!r}: minutes must be below 60")
    if seconds >= 60:
        raise ValueError(f"walltime {value!r}: seconds must be below 60")
    if days is not None and hours >= 24:
        raise ValueError(f"walltime {value!r}: hours must be below 24 after a day count")
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds

"""Portable resource requests, read from a job's ``backend_args``.

Two spellings are accepted: the spec file's ``resources`` table (stored by
:meth:`~jobfleet.spec.JobSpec.to_job` as ``backend_args["resources"]`` with
``memory_mb`` and ``walltime_s``), and plain ``backend_args`` keys as a
library user writes them (``cores``, ``memory="2GB"``, ``walltime="1:00:00"``,
``queue``, ``account``, ``gpus``, ``nodes``, ``job_name``,
``extra_directives``). Values that a scheduler could misread are refused here,
before anything is submitted.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from jobfleet._spec_values import parse_memory_mb, parse_walltime_s
from jobfleet.errors import SpecError

__all__ = ["RESOURCE_KEYS", "Resources", "resources_from_args", "scheduler_name"]

RESOURCE_KEYS = (
    "cores", "memory", "walltime", "queue", "account", "gpus", "nodes", "job_name",
    "extra_directives",
)  # fmt: skip
_WORD = re.compile(r"^[A-Za-z0-9_.+:@-]+$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclasses.dataclass(frozen=True)
class Resources:
    """Portable resource requests; ``None`` means "the scheduler's default"."""

    cores: int | None = None
    memory_mb: int | None = None
    walltime_s: int | None = None
    queue: str | None = None
    account: str | None = None
    gpus: int | None = None
    nodes: int | None = None
    job_name: str | None = None
    extra_directives: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A plain (JSON-ready) dict with the ``None`` values left out."""
        return {k: copy.copy(v) for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        """The inverse of :meth:`as_dict` (e.g. for ``job.backend_args["resources"]``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["extra_directives"] = list(values.get("extra_directives", []))
        return cls(**values)


def scheduler_name(name: str, limit: int = 64) -> str:
    """A job name every scheduler accepts: letters, digits, ``_ . -`` only, not starting
    with a digit, not too long."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip("._-") or "jobfleet"
    if cleaned[0].isdigit():  # Grid Engine refuses a -N that starts with a digit
        cleaned = "j" + cleaned
    return cleaned[:limit]


_MAX_COUNT = 2**31 - 1


def _count(field: str, value: Any, minimum: int) -> int:
    # Schedulers keep these in 32-bit integers: a larger value cannot be meant.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= _MAX_COUNT:
        raise SpecError(
            f"backend_args: field '{field}': an integer from {minimum} to {_MAX_COUNT}"
            f" is required, got {value!r}"
        )
    return value


def resources_from_args(
    args: Mapping[str, Any], scale: Mapping[str, float] | None = None
) -> Resources:
    """The resources a job asks for; ``scale`` multiplies memory / walltime (for retries)."""
    nested = args.get("resources")
    try:
        base = Resources.from_dict(nested) if isinstance(nested, Mapping) else Resources()
    except TypeError as err:
        raise SpecError(f"backend_args: field 'resources': {err}") from None
    values = dataclasses.asdict(base)
    for key in RESOURCE_KEYS:
        if key not in args or args[key] is None:
            continue
        value = args[key]
        try:
            if key == "memory":
                values["memory_mb"] = parse_memory_mb(value)
            elif key == "walltime":
                values["walltime_s"] = parse_walltime_s(value)
            else:
                values[key] = value
        except ValueError as err:
            raise SpecError(f"backend_args: field '{key}': {err}") from None
    for key, minimum in (
        ("cores", 1),
        ("nodes", 1),
        ("gpus", 0),
        ("memory_mb", 1),
        ("walltime_s", 1),
    ):
        if values[key] is not None:
            values[key] = _count(key, values[key], minimum)
    for key in ("queue", "account"):
        if values[key] is not None and not (
            isinstance(values[key], str) and _WORD.match(values[key])
        ):
            raise SpecError(f"backend_args: field '{key}': {values[key]!r} is not a valid name")
    if values["job_name"] is not None:
        values["job_name"] = scheduler_name(str(values["job_name"]))
    extra = values["extra_directives"]
    if isinstance(extra, str) or not all(
        isinstance(e, str) and "\n" not in e and "\r" not in e for e in extra
    ):
        raise SpecError(
            "backend_args: field 'extra_directives': a list of one-line strings is required"
        )
    for key, factor in (scale or {}).items():
        field = {"memory": "memory_mb", "walltime": "walltime_s"}.get(key)
        if field and values[field] is not None:
            values[field] = int(values[field] * factor)
    return Resources(**values)

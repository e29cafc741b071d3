"""The schema of job spec documents, for the loader in :mod:`jobfleet.spec`.

The ``[split.arguments]`` table with its expansion into one argument list per
subjob, and the pydantic models of the whole document (:class:`SpecDoc`), built
on the value checks of :mod:`jobfleet._spec_values`. Every check raises
:class:`ValueError` with a message meant to follow ``field '...': `` in a
:class:`~jobfleet.errors.SpecError`; :func:`describe_validation_error` turns a
pydantic error into that one line.
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from jobfleet._spec_values import (
    Scalar,
    check_json_like,
    check_scalar,
    check_text,
    kind,
    parse_memory_mb,
    parse_walltime_s,
)
from jobfleet.splitters import ARGUMENTS_SPLITTER_HARD_CAP

__all__ = [
    "BACKEND_NAMES",
    "MAX_ARGUMENT_SUBJOBS",
    "ArgumentsDoc",
    "JsonLike",
    "Scalar",
    "ScalarField",
    "SpecDoc",
    "Text",
    "check_json_like",
    "check_scalar",
    "check_text",
    "describe_validation_error",
    "kind",
    "parse_memory_mb",
    "parse_walltime_s",
]

#: Most subjobs ``[split.arguments]`` may generate (the arguments splitter's hard cap).
MAX_ARGUMENT_SUBJOBS = ARGUMENTS_SPLITTER_HARD_CAP
#: The backends a spec may name.
BACKEND_NAMES = ("local", "slurm", "htcondor", "lsf", "pbs", "sge", "dirac")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Text = Annotated[str, PlainValidator(check_text)]
ScalarField = Annotated[Scalar, PlainValidator(check_scalar)]
JsonLike = Annotated[Any, PlainValidator(check_json_like)]


def _values_entry(value: Any) -> list[Scalar]:
    if isinstance(value, list):
        return [check_scalar(item) for item in value]
    return [check_scalar(value)]


def _check_count(count: int, what: str) -> None:
    if count == 0:
        raise ValueError(f"{what} gives no subjobs")
    if count > MAX_ARGUMENT_SUBJOBS:
        raise ValueError(
            f"{what} gives {count} subjobs, more than the limit {MAX_ARGUMENT_SUBJOBS}"
        )


class ArgumentsDoc(BaseModel):
    """``[split.arguments]``: exactly one of ``range``, ``values`` and ``product``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    range: list[StrictInt] | None = None
    values: list[Annotated[list[Scalar], PlainValidator(_values_entry)]] | None = None
    product: dict[str, list[ScalarField]] | None = None

    @field_validator("range")
    @classmethod
    def _check_range(cls, value: list[int] | None) -> list[int] | None:
        if value is None:  # written as null: as if not given
            return None
        if len(value) not in (2, 3):
            raise ValueError(
                f"[start, stop] or [start, stop, step] is required, got {len(value)} numbers"
            )
        if len(value) == 3 and value[2] == 0:
            raise ValueError("step must not be 0")
        step = value[2] if len(value) == 3 else 1
        # Computed rather than len(range(...)), which overflows for huge bounds.
        _check_count(max(0, -((value[0] - value[1]) // step)), f"range {value}")
        return value

    @field_validator("values")
    @classmethod
    def _check_values(cls, value: list[list[Scalar]] | None) -> list[list[Scalar]] | None:
        if value is None:  # written as null: as if not given
            return None
        _check_count(len(value), "an empty values list" if not value else "values")
        return value

    @field_validator("product")
    @classmethod
    def _check_product(
        cls, value: dict[str, list[Scalar]] | None
    ) -> dict[str, list[Scalar]] | None:
        if value is None:  # written as null: as if not given
            return None
        if not value:
            raise ValueError("at least one key with a list of values is required")
        empty = [key for key, items in value.items() if not items]
        if empty:
            raise ValueError(f"key {empty[0]!r} has no values, so the product gives no subjobs")
        count = 1
        for items in value.values():
            count = min(count * len(items), MAX_ARGUMENT_SUBJOBS + 1)
        _check_count(count, "product")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ArgumentsDoc:
        given = [key for key in ("range", "values", "product") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of range, values, product is required,"
                f" got {', '.join(given) or 'none'}"
            )
        return self

    def subjob_arguments(self) -> list[list[Scalar]]:
        """The generated arguments of each subjob, in subjob order."""
        if self.range is not None:
            return [[number] for number in range(*self.range)]
        if self.values is not None:
            return [list(entry) for entry in self.values]
        assert self.product is not None
        return [list(combination) for combination in itertools.product(*self.product.values())]


# -- field types ------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        got = repr(value) if isinstance(value, str) else kind(value)
        raise ValueError(
            "1-100 letters, digits, '.', '_' or '-' are required, not starting with '.' or '-';"
            f" got {got}"
        )
    return value


def _path(value: Any) -> str:
    text = check_text(value)
    if not text:
        raise ValueError("a non-empty path is required")
    return text


def _word(value: Any) -> str:
    text = check_text(value)
    if not text or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError(f"a non-empty string without spaces is required, got {text!r}")
    return text


def _line(value: Any) -> str:
    text = check_text(value)
    if not text.strip() or "\n" in text or "\r" in text:
        raise ValueError(f"a non-empty single line is required, got {text!r}")
    return text


def _pattern(value: Any) -> str:
    text = check_text(value)
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"{text!r} is not a pattern inside the working directory")
    return text


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValueError(f"an environment variable name is required, got {value!r}")
    return value


def _env_pattern(value: Any) -> str:
    """A variable name, or a glob pattern of names (``BELLE2_*``)."""
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(
        value.replace("*", "X").replace("?", "X")
    ):
        raise ValueError(f"an environment variable name or pattern is required, got {value!r}")
    return value


def _env_value(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return check_text(value)


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"a number with 0 < x <= 1 is required, got {value!r}")
    return float(value)


# Schedulers keep counts, megabytes and seconds in 32-bit integers; a larger value is a
# mistake that would otherwise overflow (or be silently clipped) in the scheduler.
MAX_COUNT = 2**31 - 1


def _at_most(what: str, value: int) -> int:
    if value > MAX_COUNT:
        raise ValueError(f"{what} {value} is more than any scheduler accepts (at most {MAX_COUNT})")
    return value


def _memory(value: Any) -> int:
    return _at_most("memory in MB", parse_memory_mb(value))


def _walltime(value: Any) -> int:
    return _at_most("walltime in seconds", parse_walltime_s(value))


def _not_an_option(value: Any) -> None:
    raise ValueError("not a backend option: put resources in the [resources] table")


Name = Annotated[str, PlainValidator(_name)]
PathText = Annotated[str, PlainValidator(_path)]
Word = Annotated[str, PlainValidator(_word)]
Line = Annotated[str, PlainValidator(_line)]
Pattern = Annotated[str, PlainValidator(_pattern)]
EnvName = Annotated[str, PlainValidator(_env_name)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _SplitDoc(_Doc):
    max_files_per_subjob: StrictInt | None = Field(default=None, ge=1)
    max_subjobs: StrictInt | None = Field(default=None, ge=1)
    arguments: ArgumentsDoc | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> _SplitDoc:
        given = [key for key in type(self).model_fields if getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError(f"at most one way to split is allowed, got {' and '.join(given)}")
        return self


class _ResourcesDoc(_Doc):
    cores: StrictInt | None = Field(default=None, ge=1, le=MAX_COUNT)
    memory: Annotated[int, PlainValidator(_memory)] | None = None
    walltime: Annotated[int, PlainValidator(_walltime)] | None = None
    queue: Word | None = None
    account: Word | None = None
    gpus: StrictInt | None = Field(default=None, ge=0, le=MAX_COUNT)
    nodes: StrictInt | None = Field(default=None, ge=1, le=MAX_COUNT)
    job_name: Name | None = None
    extra_directives: list[Line] = []


class _BackendDoc(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, JsonLike] = Field(init=False)
    name: Literal["local", "slurm", "htcondor", "lsf", "pbs", "sge", "dirac"] = "local"
    resources: Annotated[None, PlainValidator(_not_an_option)] = None


class _EnvironmentDoc(_Doc):
    capture: StrictBool | None = None
    inherit: StrictBool | None = None
    site_setup: list[Text] | None = None
    forward: list[Annotated[str, PlainValidator(_env_pattern)]] | None = None
    set: dict[EnvName, Annotated[str, PlainValidator(_env_value)]] | None = None


class SpecDoc(_Doc):
    """A whole spec document, as written (paths not yet resolved, globs not yet expanded)."""

    name: Name
    cmd: list[Text]
    args: list[ScalarField] = []
    input_files: list[PathText] = []
    sandbox: list[PathText] = []
    output_patterns: list[Pattern] = []
    setup: list[Text] = []
    working_dir: PathText | None = None
    output_dir: PathText | None = None
    max_retries: StrictInt = Field(default=0, ge=0)
    max_failed_fraction: Annotated[float, PlainValidator(_fraction)] = 0.5
    split: _SplitDoc | None = None
    resources: _ResourcesDoc = Field(default_factory=_ResourcesDoc)
    backend: _BackendDoc = Field(default_factory=_BackendDoc)
    environment: _EnvironmentDoc | None = None

    @field_validator("cmd")
    @classmethod
    def _check_cmd(cls, value: list[str]) -> list[str]:
        if not value or not value[0]:
            raise ValueError("a non-empty list of strings, starting with the program, is required")
        return value


_TABLES: dict[tuple[str, ...], type[BaseModel]] = {
    (): SpecDoc,
    ("split",): _SplitDoc,
    ("split", "arguments"): ArgumentsDoc,
    ("resources",): _ResourcesDoc,
    ("environment",): _EnvironmentDoc,
}
_MESSAGES = {
    "missing": "required, but missing",
    "model_type": "a table is required",
    "dict_type": "a table is required",
    "list_type": "a list is required",
    "int_type": "an integer is required",
    "int_from_float": "an integer is required",
    "bool_type": "true or false is required",
}


def describe_validation_error(err: ValidationError) -> str:
    """``field '<dotted.field>': <why>`` for the first problem pydantic found."""
    first = err.errors(include_url=False)[0]
    loc = tuple(str(part) for part in first["loc"])
    kind_ = first["type"]
    if kind_ == "invalid_key":
        key = first.get("input")
        where = ".".join(loc[:-2] if loc[-1:] == ("[key]",) else loc[:-1]) or "(document)"
        return f"field '{where}': keys must be strings, got {kind(key)} {key!r}"
    where = ".".join(part for part in loc if part != "[key]") or "(document)"
    if kind_ == "extra_forbidden":
        known = list(_TABLES[loc[:-1]].model_fields) if loc[:-1] in _TABLES else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"field '{where}': unknown key ({hint})"
    if kind_ == "value_error":
        reason = str(first.get("ctx", {}).get("error", first["msg"]))
    else:
        reason = _MESSAGES.get(kind_, first["msg"])
        if kind_ != "missing":
            reason += f", got {_short(first.get('input'))}"
    return f"field '{where}': {reason}"


def _short(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return kind(value)

"""Validation of a job description (``Job.job_dict`` / job JSON files)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictStr,
    ValidationError,
)

from jobfleet._spec_values import check_json_like, check_scalar
from jobfleet.errors import SpecError

__all__ = ["describe_validation_error", "parse_job_dict"]

# Only what survives a JSON round trip unchanged: no NaN or infinity, string keys.
Scalar = Annotated[str | int | float | bool, PlainValidator(check_scalar)]
JsonLike = Annotated[Any, PlainValidator(check_json_like)]


class _SubjobDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=0)
    input_files: list[StrictStr] = []
    args: list[Scalar] = []


class _JobDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr | None = None
    input_sandbox_files: list[StrictStr] = []
    working_dir: StrictStr = "."
    output_dir: StrictStr = "."
    output_patterns: list[StrictStr] = []
    cmd: list[StrictStr] = []
    args: list[Scalar] = []
    input_files: list[StrictStr] = []
    setup_cmds: list[StrictStr] = []
    backend_args: dict[StrictStr, JsonLike] = {}
    subjobs: list[_SubjobDoc] = []


def describe_validation_error(err: ValidationError) -> str:
    """One line naming the first offending field and why."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(document)"
    why = first["msg"]
    if first["type"] == "value_error":  # our own check's message, without pydantic's prefix
        why = str(first.get("ctx", {}).get("error", why))
    # A key may hold a newline; the message must stay one line.
    return f"field '{where}': {why}".replace("\r", "\\r").replace("\n", "\\n")


def parse_job_dict(job_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Check a job description and return it with defaults filled in."""
    try:
        doc = _JobDoc.model_validate(dict(job_dict))
    except ValidationError as err:
        raise SpecError(describe_validation_error(err)) from None
    ids = [sub.id for sub in doc.subjobs]
    if len(set(ids)) != len(ids):
        raise SpecError("field 'subjobs': subjob ids must be unique")
    return doc.model_dump()

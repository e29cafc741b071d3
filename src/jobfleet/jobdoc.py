"""Validation of a job description (``Job.job_dict`` / job JSON files)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from jobfleet.errors import SpecError

__all__ = ["describe_validation_error", "parse_job_dict"]

Scalar = StrictStr | int | float | bool


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
    backend_args: dict[StrictStr, Any] = {}
    subjobs: list[_SubjobDoc] = []


def describe_validation_error(err: ValidationError) -> str:
    """One line naming the first offending field and why."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(document)"
    # A key may hold a newline; the message must stay one line.
    return f"field '{where}': {first['msg']}".replace("\r", "\\r").replace("\n", "\\n")


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

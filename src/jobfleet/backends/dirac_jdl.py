"""DIRAC text: JDL values, job states and the output of the ``dirac-wms-*`` commands.

Pure functions only, tested on recorded output (tests/backends/data/dirac). The
formats are those of DIRAC's own scripts (``DIRAC/Interfaces/scripts``):
``dirac-wms-job-submit`` prints ``JobID = 11`` (``JobID = [1047, 1048]`` for a
parametric job), ``dirac-wms-job-status`` one ``JobID=N Key=value; ...`` line per
known job, ``dirac-wms-job-get-output`` an ``ERROR <id>: <message>`` line per job
it could not fetch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jobfleet.backends.native import NativeState
from jobfleet.errors import BackendError, SpecError
from jobfleet.status import JobStatus

__all__ = [
    "APP_ERRORS",
    "DIRAC_STATES",
    "PARAMETRIC_LIMIT",
    "as_list",
    "dirac_state",
    "jdl_attribute",
    "jdl_list",
    "jdl_string",
    "lfn_of",
    "parse_get_output",
    "parse_select_output",
    "parse_status_lines",
    "parse_submit_output",
]

_S, _R, _F, _C = JobStatus.submitted, JobStatus.running, JobStatus.failed, JobStatus.completed

#: DIRAC job states (DIRAC.WorkloadManagementSystem.Client.JobStatus) -> jobfleet status.
#: ``Stalled`` is running: DIRAC moves a stalled job back to Running when it is heard
#: of again, or to Failed ("Job stalled: pilot not running") when it gives up.
DIRAC_STATES: Mapping[str, JobStatus] = {
    "Submitting": _S, "Received": _S, "Checking": _S, "Scouting": _S, "Staging": _S,
    "Waiting": _S, "Matched": _S, "Rescheduled": _S,
    "Running": _R, "Stalled": _R, "Completing": _R, "Completed": _R,
    "Done": _C, "Failed": _F, "Killed": _F, "Deleted": _F,
}  # fmt: skip
#: The minor status of a payload that exited non-zero: its exit code describes it better.
APP_ERRORS = "Application Finished With Errors"
#: What ``dirac-wms-job-kill`` leaves as minor status (JobManagerHandler.__killJob).
_KILLED_BY_USER = ("", "Marked for termination")
_TIMEOUT = re.compile(r"wall clock time|CPU limit|maximum CPU time", re.I)
_JOB_ID_LINE = re.compile(r"^\s*JobID\s*=\s*\[?([\d,\s]+)\]?\s*$")
_STATUS_LINE = re.compile(r"^JobID=(\d+)\s+(.*)$")
_FIELD = re.compile(r"(\w+)=(.*?);(?=\s+\w+=|\s*$)")
_GET_OUTPUT_ERROR = re.compile(r"^ERROR (\d+): (.*)$")
#: How the server refuses a parametric job that is too large.
PARAMETRIC_LIMIT = re.compile(r"exceeds the limit of (\d+)")
#: What a JDL string may hold: DIRAC's ClassAd reader knows no escapes, strips blanks
#: from lists, ends values at ``;`` and expands ``%s``/``%n`` in parametric jobs.
_JDL_SAFE = re.compile(r"^[A-Za-z0-9_./:@+~-]+$")
_JDL_ATTRIBUTE = re.compile(r"^\s*[A-Za-z][A-Za-z0-9_.]*\s*=[^;\[\]%]*;?\s*$")
_LFN = re.compile(r"^lfn:/*", re.I)


def lfn_of(entry: str) -> str | None:
    """``LFN:/vo/f``, ``LFN:///vo/f`` or ``lfn://vo/f`` as DIRAC's ``LFN:/vo/f``; else ``None``."""
    match = _LFN.match(entry)
    return None if match is None else "LFN:/" + entry[match.end() :]


def jdl_string(value: str, field: str) -> str:
    """``value`` as a quoted JDL string; :class:`SpecError` if DIRAC would misread it."""
    if not _JDL_SAFE.match(value) or "//" in value.removeprefix("LFN:"):
        raise SpecError(
            f"backend dirac: field '{field}': {value!r} cannot be written in a DIRAC JDL "
            "(only letters, digits and _ . / : @ + ~ - are allowed)"
        )
    return f'"{value}"'


def jdl_list(values: Iterable[str], field: str) -> str:
    """``values`` as a JDL list of strings."""
    return "{" + ", ".join(jdl_string(v, field) for v in values) + "}"


def jdl_attribute(line: str) -> str:
    """A user's JDL attribute line (``Priority = 3``), checked and ended with ``;``."""
    if not _JDL_ATTRIBUTE.match(line):
        raise SpecError(
            f"backend dirac: field 'extra_directives': {line!r} is not "
            "a JDL attribute line such as 'Priority = 3;'"
        )
    return line.strip() if line.strip().endswith(";") else f"{line.strip()};"


def parse_submit_output(stdout: str) -> list[str]:
    """Job ids from ``dirac-wms-job-submit``: ``JobID = 11`` or ``JobID = [1047, 1048]``."""
    for line in stdout.splitlines():
        match = _JOB_ID_LINE.match(line)
        if match:
            ids = [part.strip() for part in match.group(1).split(",") if part.strip()]
            if ids:
                return ids
    said = stdout.strip()[-300:] or "nothing"
    raise BackendError(f"dirac-wms-job-submit printed no job id: {said!r}")


def parse_status_lines(stdout: str) -> dict[str, dict[str, str]]:
    """``JobID=2 Status=Done; MinorStatus=Execution Complete; Site=X;`` -> ``{"2": {...}}``.

    Field order differs between DIRAC versions; values may hold blanks.
    """
    jobs = {}
    for line in stdout.splitlines():
        match = _STATUS_LINE.match(line.strip())
        if match:
            jobs[match.group(1)] = dict(_FIELD.findall(match.group(2)))
    return jobs


def dirac_state(status: str, minor: str = "") -> NativeState:
    """One DIRAC ``Status``/``MinorStatus`` pair as a :class:`NativeState`."""
    mapped = DIRAC_STATES.get(status, _R)
    word = f"{status}: {minor}" if minor else status
    reason = None
    if status == "Killed":
        reason = "cancelled" if minor in _KILLED_BY_USER else f"killed ({minor})"
    elif status == "Deleted":
        reason = "deleted"
    elif mapped is _F and minor != APP_ERRORS:
        reason = "timeout" if _TIMEOUT.search(minor) else (minor or "failed")
    return NativeState(mapped, word, None, reason, requeued=status == "Rescheduled")


def parse_get_output(stdout: str) -> dict[str, str]:
    """``ERROR <id>: <message>`` lines of ``dirac-wms-job-get-output`` as ``{id: message}``."""
    errors = {}
    for line in stdout.splitlines():
        match = _GET_OUTPUT_ERROR.match(line.strip())
        if match:
            errors[match.group(1)] = match.group(2)
    return errors


def parse_select_output(stdout: str) -> list[str]:
    """Job ids from ``dirac-wms-select-jobs`` (``==> Selected N jobs ...`` then ``id,id``)."""
    lines = stdout.strip().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("==> Selected") and number + 1 < len(lines):
            ids = [i.strip() for i in lines[number + 1].split(",") if i.strip().isdigit()]
            return sorted(ids, key=int)
    return []


def as_list(value: Any, field: str) -> list[str]:
    """A backend option given as one string or a list of strings."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise SpecError(f"backend dirac: field '{field}': a string or a list of strings")
    return [v for v in values if v]

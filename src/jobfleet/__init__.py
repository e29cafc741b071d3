"""jobfleet: describe a job once, split it into subjobs, run it anywhere, follow it to the end.

A drop-in successor of Belle II's ``caf.backends``: the same names and keyword
arguments, with a durable job store, native job arrays and batched status
queries on top.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobfleet.backends import (
        LSF,
        PBS,
        Backend,
        Batch,
        BatchBackend,
        Dirac,
        GridEngine,
        HTCondor,
        Local,
        Slurm,
    )
    from jobfleet.errors import (
        BackendError,
        CommandError,
        JobfleetError,
        SpecError,
        SplitterError,
        StoreError,
    )
    from jobfleet.inputs import get_input_data
    from jobfleet.job import Job, SubJob
    from jobfleet.monitor import monitor_jobs
    from jobfleet.splitters import (
        ArgumentsGenerator,
        ArgumentsSplitter,
        MaxFilesSplitter,
        MaxSubjobsSplitter,
        SubjobSplitter,
        range_arguments,
    )
    from jobfleet.status import JobStatus

# Names are imported on first use: a command line that only submits to one backend
# should not pay for importing every backend and the job-file models at start-up.
_EXPORTS = {
    "LSF": "jobfleet.backends",
    "PBS": "jobfleet.backends",
    "Backend": "jobfleet.backends",
    "Batch": "jobfleet.backends",
    "BatchBackend": "jobfleet.backends",
    "Dirac": "jobfleet.backends",
    "GridEngine": "jobfleet.backends",
    "HTCondor": "jobfleet.backends",
    "Local": "jobfleet.backends",
    "Slurm": "jobfleet.backends",
    "BackendError": "jobfleet.errors",
    "CommandError": "jobfleet.errors",
    "JobfleetError": "jobfleet.errors",
    "SpecError": "jobfleet.errors",
    "SplitterError": "jobfleet.errors",
    "StoreError": "jobfleet.errors",
    "get_input_data": "jobfleet.inputs",
    "Job": "jobfleet.job",
    "SubJob": "jobfleet.job",
    "monitor_jobs": "jobfleet.monitor",
    "ArgumentsGenerator": "jobfleet.splitters",
    "ArgumentsSplitter": "jobfleet.splitters",
    "MaxFilesSplitter": "jobfleet.splitters",
    "MaxSubjobsSplitter": "jobfleet.splitters",
    "SubjobSplitter": "jobfleet.splitters",
    "range_arguments": "jobfleet.splitters",
    "JobStatus": "jobfleet.status",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jobfleet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "LSF",
    "PBS",
    "ArgumentsGenerator",
    "ArgumentsSplitter",
    "Backend",
    "BackendError",
    "Batch",
    "BatchBackend",
    "CommandError",
    "Dirac",
    "GridEngine",
    "HTCondor",
    "Job",
    "JobStatus",
    "JobfleetError",
    "Local",
    "MaxFilesSplitter",
    "MaxSubjobsSplitter",
    "Slurm",
    "SpecError",
    "SplitterError",
    "StoreError",
    "SubJob",
    "SubjobSplitter",
    "get_input_data",
    "monitor_jobs",
    "range_arguments",
]

__version__ = "0.1.0"

# The library never configures logging for its users; it only stays quiet by default.
logging.getLogger("jobfleet").addHandler(logging.NullHandler())

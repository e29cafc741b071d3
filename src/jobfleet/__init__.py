"""jobfleet: describe a job once, split it into subjobs, run it anywhere, follow it to the end.

A drop-in successor of Belle II's ``caf.backends``: the same names and keyword
arguments, with a durable job store, native job arrays and batched status
queries on top.
"""

import logging

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

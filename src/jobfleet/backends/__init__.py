"""Backends: where jobs run.

Each backend's module is imported on first use of its name, so that using one
backend (or only the job store) does not import all of them.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobfleet.backends.base import Backend
    from jobfleet.backends.batch import BatchBackend
    from jobfleet.backends.dirac import Dirac
    from jobfleet.backends.htcondor import HTCondor
    from jobfleet.backends.local import Local
    from jobfleet.backends.lsf import LSF
    from jobfleet.backends.pbs import PBS
    from jobfleet.backends.sge import GridEngine
    from jobfleet.backends.slurm import Slurm

    #: caf.backends' name for the base of the batch backends.
    Batch = BatchBackend

_EXPORTS = {
    "Backend": ("jobfleet.backends.base", "Backend"),
    "BatchBackend": ("jobfleet.backends.batch", "BatchBackend"),
    "Batch": ("jobfleet.backends.batch", "BatchBackend"),
    "Dirac": ("jobfleet.backends.dirac", "Dirac"),
    "HTCondor": ("jobfleet.backends.htcondor", "HTCondor"),
    "Local": ("jobfleet.backends.local", "Local"),
    "LSF": ("jobfleet.backends.lsf", "LSF"),
    "PBS": ("jobfleet.backends.pbs", "PBS"),
    "GridEngine": ("jobfleet.backends.sge", "GridEngine"),
    "Slurm": ("jobfleet.backends.slurm", "Slurm"),
}

__all__ = [
    "LSF",
    "PBS",
    "Backend",
    "Batch",
    "BatchBackend",
    "Dirac",
    "GridEngine",
    "HTCondor",
    "Local",
    "Slurm",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jobfleet.backends' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

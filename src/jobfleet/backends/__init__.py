"""Backends: where jobs run."""

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

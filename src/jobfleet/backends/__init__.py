"""Backends: where jobs run."""

from jobfleet.backends.base import Backend
from jobfleet.backends.batch import BatchBackend
from jobfleet.backends.local import Local
from jobfleet.backends.slurm import Slurm

__all__ = ["Backend", "BatchBackend", "Local", "Slurm"]

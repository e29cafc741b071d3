"""The ``slurm`` backend name for the command line and the store."""

from __future__ import annotations

from jobfleet.backends.slurm import Slurm
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["SlurmDriver"]


class SlurmDriver(BatchDriver):
    name = "slurm"
    backend_class = Slurm
    required_commands = ("sbatch", "squeue", "scancel", "scontrol")
    probe_command = ("sinfo", "--noheader", "--format=%t")
    default_poll_interval = 5.0


register_driver("slurm", SlurmDriver)

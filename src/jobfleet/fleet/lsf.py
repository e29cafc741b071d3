"""The ``lsf`` backend name for the command line and the store."""

from __future__ import annotations

from jobfleet.backends.lsf import LSF
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["LSFDriver"]


class LSFDriver(BatchDriver):
    name = "lsf"
    backend_class = LSF
    required_commands = ("bsub", "bjobs", "bkill")
    probe_command = ("bjobs", "-json", "-o", "jobid stat")
    default_poll_interval = 10.0


register_driver("lsf", LSFDriver)

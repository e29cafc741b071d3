"""The ``pbs`` backend name (OpenPBS / PBS Pro and Torque) for the command line and the store."""

from __future__ import annotations

from jobfleet.backends.pbs import PBS
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["PBSDriver"]


class PBSDriver(BatchDriver):
    name = "pbs"
    backend_class = PBS
    required_commands = ("qsub", "qstat", "qdel")
    probe_command = ("qstat", "-B")
    default_poll_interval = 5.0


register_driver("pbs", PBSDriver)

"""The ``htcondor`` backend name for the command line and the store."""

from __future__ import annotations

from jobfleet.backends.htcondor import HTCondor
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["HTCondorDriver"]


class HTCondorDriver(BatchDriver):
    name = "htcondor"
    backend_class = HTCondor
    required_commands = ("condor_submit", "condor_q", "condor_history", "condor_rm")
    probe_command = ("condor_q", "-totals")
    default_poll_interval = 10.0


register_driver("htcondor", HTCondorDriver)

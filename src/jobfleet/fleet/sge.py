"""The ``sge`` backend name (Son of Grid Engine, Univa/Altair GE) for the CLI and the store."""

from __future__ import annotations

from jobfleet.backends.sge import GridEngine
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["GridEngineDriver"]


class GridEngineDriver(BatchDriver):
    name = "sge"
    backend_class = GridEngine
    required_commands = ("qsub", "qstat", "qdel", "qacct", "qconf")
    probe_command = ("qstat", "-g", "c")
    default_poll_interval = 5.0


register_driver("sge", GridEngineDriver)

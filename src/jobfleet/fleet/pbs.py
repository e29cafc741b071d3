"""The ``pbs`` backend name (OpenPBS / PBS Pro and Torque) for the command line and the store."""

from __future__ import annotations

import subprocess

from jobfleet.backends.pbs import PBS, flavour_from_version
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["PBSDriver"]


class PBSDriver(BatchDriver):
    name = "pbs"
    backend_class = PBS
    required_commands = ("qsub", "qstat", "qdel")
    probe_command = ("qstat", "-B")
    default_poll_interval = 5.0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        usable, why = super().available()
        if usable or why.startswith("command not found"):
            return usable, why
        # Grid Engine has a qstat too: say so rather than show its complaint about -B
        try:
            said = subprocess.run(
                ["qstat", "--version"], capture_output=True, text=True, timeout=15, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return usable, why
        if flavour_from_version(said.stdout + said.stderr) is None:
            return False, "the qstat found here is not OpenPBS, PBS Pro or Torque"
        return usable, why


register_driver("pbs", PBSDriver)

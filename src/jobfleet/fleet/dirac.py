"""The ``dirac`` backend name for the command line and the store."""

from __future__ import annotations

from jobfleet.backends.dirac import Dirac
from jobfleet.fleet.batchdriver import BatchDriver
from jobfleet.fleet.driver import register_driver

__all__ = ["DiracDriver"]


class DiracDriver(BatchDriver):
    name = "dirac"
    backend_class = Dirac
    required_commands = (
        "dirac-wms-job-submit",
        "dirac-wms-job-status",
        "dirac-wms-job-get-output",
        "dirac-wms-job-kill",
        "dirac-proxy-info",
    )
    #: Exits 1 without a proxy, with an expired one, or with one of an unknown group.
    probe_command = ("dirac-proxy-info", "--checkvalid")
    default_poll_interval = 60.0  # grid jobs wait minutes to be matched; spare the servers

    @classmethod
    def available(cls) -> tuple[bool, str]:
        usable, why = super().available()
        if not usable and why.startswith("scheduler not answering: "):
            return False, "no valid DIRAC proxy (dirac-proxy-init): " + why.split(": ", 1)[1]
        return usable, why


register_driver("dirac", DiracDriver)

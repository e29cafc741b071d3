"""The conformance jobs through the caf.backends-style library API, in a process of their own.

``python -m conformance.library ROOT`` loads the specs that :mod:`conformance.driver`
wrote under ``ROOT`` (``jobfleet.spec.load_spec(...).to_job()``), submits them
with the backend class named in the spec (``backend.submit([...])``), cancels the
``cancel`` job once it runs (``backend.cancel(job)``), follows everything with
``monitor_jobs`` and writes ``ROOT/status.json`` in the shape of ``jobfleet
status --json``. A process of its own, because each fake scheduler needs its
own ``PATH``, and all backends run at once.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from jobfleet import LSF, PBS, Dirac, GridEngine, HTCondor, Job, Local, Slurm, monitor_jobs
from jobfleet.backends.base import Backend
from jobfleet.spec import load_spec

#: Backend name in a spec -> class (the library user's choice).
CLASSES: dict[str, type[Backend]] = {
    "local": Local, "slurm": Slurm, "sge": GridEngine, "htcondor": HTCondor, "lsf": LSF,
    "pbs": PBS, "dirac": Dirac,
}  # fmt: skip
ROLES = ("ok", "exit", "timeout", "cancel")
DEADLINE = 280.0


def _backend(name: str, options: dict[str, Any]) -> Backend:
    options = {k: v for k, v in options.items() if k != "poll_interval"}  # a driver option
    if name == "local":
        return Local(max_processes=int(options.pop("max_processes", 1)), backend_args=options)
    return CLASSES[name](backend_args={**options, "min_poll_interval": 0})


def _doc(job: Job) -> dict[str, Any]:
    units = [job.subjobs[i] for i in sorted(job.subjobs)] if job.subjobs else [job]
    return {
        "status": job.status.value,
        "total": len(units),
        "subjobs": [
            {"id": getattr(u, "id", 0), "status": u.status.value, "exit_code": u.exit_code,
             "reason": u.reason, "attempts": u.attempt}
            for u in units
        ],
    }  # fmt: skip


def main(root: Path) -> int:
    specs = {role: load_spec(root / f"{role}.toml") for role in ROLES}
    jobs = {role: spec.to_job() for role, spec in specs.items()}
    backend = _backend(specs["ok"].backend_name, specs["ok"].backend_options)
    backend.submit(list(jobs.values()))
    deadline = time.monotonic() + DEADLINE
    cancel = jobs["cancel"]
    while not ((root / "marks" / "cancel").exists() and cancel.status == "running"):
        if time.monotonic() > deadline:
            raise SystemExit("the job to cancel never ran")
        cancel.update_status()
        time.sleep(0.3)
    backend.cancel(cancel)
    monitor_jobs(list(jobs.values()), heartbeat=0.5)
    status = {role: _doc(job) for role, job in jobs.items()}
    (root / "status.json").write_text(json.dumps(status, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

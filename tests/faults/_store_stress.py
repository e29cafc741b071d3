"""One worker of the concurrent-store test: submit, cancel, resubmit and watch in a loop.

Run as a script (``python _store_stress.py DB ROOT TAG SECONDS SEED SUMMARY``) so
each worker is a separate OS process with its own :class:`~jobfleet.fleet.Fleet`,
like two terminals. It uses jobfleet's public API only and writes a JSON summary:
the jobs it submitted (name -> subjob count), operations per kind, refusals
(another process was submitting the same job) and any unexpected error.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, range_arguments
from jobfleet.fleet import Fleet, JobActiveError, JobBusyError
from jobfleet.fleet.control import cancel, resubmit
from jobfleet.store import Store

SCRIPT = 'echo x >> {marks}/"$0.$1.mark"; sleep 0.0$(( RANDOM % 5 ))'


def _job(root: Path, name: str, n: int) -> Job:
    job = Job(name)
    job.working_dir = root / "work" / name
    job.cmd = ["bash", "-c", SCRIPT.format(marks=root / "marks"), name]
    job.splitter = ArgumentsSplitter(arguments_generator=ArgumentsGenerator(range_arguments, 0, n))
    return job


def main(db: str, root_text: str, tag: str, seconds: float, seed: int, summary: str) -> None:
    rng = random.Random(seed)
    root = Path(root_text)
    submitted: dict[str, int] = {}
    ops: Counter[str] = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    with Store(Path(db)) as store:
        fleet = Fleet(store)
        while time.monotonic() < deadline:
            op = rng.choices(["submit", "cancel", "resubmit", "watch"], [3, 2, 1, 4])[0]
            try:
                jobs = store.list_jobs()
                if op == "submit" or not jobs:
                    op, name, n = "submit", f"{tag}{len(submitted)}", rng.randint(1, 6)
                    fleet.submit_job(_job(root, name, n), "local", {"max_processes": 2})
                    submitted[name] = n
                elif op == "cancel":
                    target = rng.choice(jobs)
                    # The whole job, or one subjob id (absent from small jobs: a no-op).
                    ids = None if rng.random() < 0.3 else [rng.randrange(6)]
                    cancel(fleet, target.id, ids)
                elif op == "resubmit":
                    resubmit(fleet, rng.choice(jobs).id, failed_only=True)
                else:
                    fleet.watch_step([j.id for j in jobs])
                ops[op] += 1
            except (JobBusyError, JobActiveError):
                ops[f"{op} refused"] += 1
            except Exception:  # every unexpected error is reported to the test
                ops[f"{op} error"] += 1
                errors.append(traceback.format_exc())
        fleet.stop_watching()
    Path(summary).write_text(json.dumps({"submitted": submitted, "ops": ops, "errors": errors}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], float(a[3]), int(a[4]), a[5])

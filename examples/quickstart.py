"""A first jobfleet job: a Monte Carlo estimate of pi, split into 8 subjobs run locally.

Run it with ``python examples/quickstart.py``. Each subjob runs
``pi_estimate.py <seed> <samples>`` in its own working directory under
``examples/work/quickstart``; the JSON results are collected into
``examples/work/quickstart-out`` and combined here.
"""

import json
import logging
import sys
from pathlib import Path

from jobfleet import ArgumentsGenerator, ArgumentsSplitter, Job, Local, monitor_jobs


def seeds_with_samples(n_seeds: int, samples: int):  # an arguments generator
    yield None  # primes the generator; each later yield answers one subjob
    for seed in range(n_seeds):
        yield (seed, samples)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    here = Path(__file__).resolve().parent
    job = Job("quickstart")
    job.cmd = [sys.executable, "pi_estimate.py"]
    job.input_sandbox_files = [here / "pi_estimate.py"]
    job.working_dir = here / "work" / "quickstart"
    job.output_dir = here / "work" / "quickstart-out"
    job.output_patterns = ["pi_*.json"]
    job.splitter = ArgumentsSplitter(
        arguments_generator=ArgumentsGenerator(seeds_with_samples, 8, 200_000)
    )
    backend = Local(max_processes=2)
    backend.submit(job)
    failed = monitor_jobs([job], heartbeat=1)
    results = [json.loads(p.read_text()) for p in sorted(job.output_dir.glob("*/pi_*.json"))]
    inside = sum(r["inside"] for r in results)
    samples = sum(r["samples"] for r in results)
    print(f"{len(results)} subjobs ended {job.status}; pi ~ {4 * inside / samples:.5f}")
    return 1 if failed or len(results) != 8 else 0


if __name__ == "__main__":
    sys.exit(main())

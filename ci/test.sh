#!/bin/bash
# ci/test.sh - install what the tests need, start the services they use, run every check.
# This is the README's test command and what .ci/run calls. Run it from anywhere.
#
# As root it also starts the project's single-node Slurm cluster (ci/slurm/start.sh)
# and Grid Engine cell (ci/sge/start.sh); without root, or with JOBFLEET_SLURM=0 /
# JOBFLEET_SGE=0, those tests skip with a reason (in CI, CI=true, a scheduler that
# cannot start is a failure instead).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing jobfleet with its test dependencies"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [ "$(id -u)" = 0 ]; then
  if [ "${JOBFLEET_SLURM:-1}" = 1 ]; then
    echo "== starting the local Slurm cluster"
    bash ci/slurm/start.sh
  fi
  if [ "${JOBFLEET_SGE:-1}" = 1 ]; then
    echo "== starting the local Grid Engine cell"
    bash ci/sge/start.sh
    export JOBFLEET_SGE=1  # in CI (CI=true) a cell that does not answer fails the tests
  fi
fi

echo "== ruff"
python3 -m ruff check src tests benchmarks examples
python3 -m ruff format --check src tests benchmarks examples
echo "== mypy"
python3 -m mypy
echo "== pytest"
# "--opt=value": pytest >= 9.2 reads a separate value as a test path before it loads
# the conftest that defines the option, and then rejects the option.
python3 -m pytest --reliability-report=docs/reliability.md "$@"

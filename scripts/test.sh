#!/usr/bin/env bash
# Lint and run the whole test suite (parity with upstream included) in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check booknlp_api tests benchmarks scripts
# Two processes, each file kept in one (its module fixtures, servers and hold files stay together):
# most tests wait on the servers and workers they start, so this halves the wall time on two cores.
"$VENV/bin/python" -m pytest -q -n "${TEST_PROCESSES:-2}" --dist loadfile "$@"

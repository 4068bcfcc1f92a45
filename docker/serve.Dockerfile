# syntax=docker/dockerfile:1
# Serving image: vLLM (from the pinned official image) behind the project's OpenAI-compatible
# gateway, or as a RunPod serverless worker. One image, two modes: MODE=gateway | serverless (unset:
# serverless inside a RunPod queue worker, else gateway; docker/serve_entrypoint.sh).
# Build from the repository root:
#
#   docker build -f docker/serve.Dockerfile -t ghcr.io/me/socratic-serve:0.1.0 .
#   # bake a model into the image (a private repo needs the token as a build secret):
#   docker build -f docker/serve.Dockerfile --build-arg MODEL_ID=me/socratic-tutor \
#     --secret id=hf_token,env=HF_TOKEN -t ghcr.io/me/socratic-serve:0.1.0-baked .
#
# The project never imports vllm: it runs `vllm serve` as a child process. Its own code lives in a
# separate virtualenv with only the `serve` extra (no torch), so neither side pins the other's
# packages; vLLM's `vllm` command stays on PATH behind it.
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0
ARG NODE_IMAGE=node:22-bookworm-slim

# The chat page's libraries from the npm registry (scripts/build_webui.sh): only their browser
# files reach the image, never node or npm. Node 22: katex's dependencies need node >= 22.12.
FROM ${NODE_IMAGE} AS webui
WORKDIR /src
COPY server/webui/package.json server/webui/package-lock.json server/webui/
COPY scripts/build_webui.sh scripts/
RUN scripts/build_webui.sh

FROM ${VLLM_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="socratic-tutor-serve" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.description="The Socratic tutor through vLLM behind an OpenAI-compatible gateway, or as a RunPod serverless worker" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SOCRATIC_HOME=/app \
    PATH=/opt/socratic/bin:$PATH \
    PORT=8000

WORKDIR /app

# Dependencies first (a code change does not reinstall them); a placeholder package lets pip
# resolve the extra, the real code and its editable install follow.
COPY pyproject.toml README.md constraints.txt ./
RUN python3 -m venv /opt/socratic \
    && mkdir -p tutor && touch tutor/__init__.py handler.py \
    && /opt/socratic/bin/pip install --no-cache-dir -c constraints.txt ".[serve]" huggingface_hub \
    && /opt/socratic/bin/pip uninstall -y socratic-tutor \
    && rm -rf tutor handler.py build ./*.egg-info

COPY . .
COPY --from=webui /src/server/webui/static/vendor server/webui/static/vendor
RUN /opt/socratic/bin/pip install --no-cache-dir --no-deps -c constraints.txt -e . \
    && if /opt/socratic/bin/python -c "import torch" 2>/dev/null; then \
         echo "the gateway environment must not contain torch" >&2; exit 1; \
       fi \
    && socratic serve --help > /dev/null \
    && /opt/socratic/bin/python -c "import server.web as w; assert not w.missing_vendor_files(), w.missing_vendor_files()" \
    && command -v vllm

# Optional: bake a model at build time (else MODEL names a directory or Hub repo at start-up).
# The token comes in as a BuildKit secret, so it is in no layer and no image history.
ARG MODEL_ID=""
ARG MODEL_REVISION=""
RUN --mount=type=secret,id=hf_token,required=false \
    if [ -n "${MODEL_ID}" ]; then \
      HF_TOKEN="$(cat /run/secrets/hf_token 2>/dev/null || true)" \
        python docker/fetch_model.py "${MODEL_ID}" --local-dir /models/baked \
        ${MODEL_REVISION:+--revision "${MODEL_REVISION}"}; \
    fi

EXPOSE 8000
# Runs as root like the base image: RunPod mounts the network volume root-owned.
ENTRYPOINT ["/app/docker/serve_entrypoint.sh"]

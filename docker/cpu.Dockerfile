# syntax=docker/dockerfile:1
# CPU image for the offline twin of the GPU path (docker compose --profile cpu): trains and exports
# the tiny tutor, then serves it through `transformers serve` behind the same gateway. No GPU, no
# model download. Build from the repository root:
#
#   docker build -f docker/cpu.Dockerfile -t socratic-tutor-cpu:0.1.0 .
#   docker run --rm -p 8000:8000 socratic-tutor-cpu:0.1.0 demo
#
# torch is the CPU build (the one `make` installs) from PyTorch's CPU index; everything else,
# torch's own dependencies included, is pinned by constraints.txt and comes from PyPI.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# The chat page's libraries from the npm registry (scripts/build_webui.sh): only their browser
# files reach the image, never node or npm. Node 22: katex's dependencies need node >= 22.12.
FROM ${NODE_IMAGE} AS webui
WORKDIR /src
COPY server/webui/package.json server/webui/package-lock.json server/webui/
COPY scripts/build_webui.sh scripts/
RUN scripts/build_webui.sh

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE_URL=""
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

LABEL org.opencontainers.image.title="socratic-tutor-cpu" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.description="The Socratic tutor's tiny CPU twin: train, export and serve offline" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SOCRATIC_HOME=/app \
    HF_HUB_OFFLINE=1

WORKDIR /app

COPY pyproject.toml README.md constraints.txt ./
RUN python -m pip install --no-cache-dir -c constraints.txt --index-url "${TORCH_INDEX_URL}" \
      --extra-index-url https://pypi.org/simple "torch==${TORCH_VERSION}" \
    && mkdir -p tutor && touch tutor/__init__.py handler.py \
    && python -m pip install --no-cache-dir -c constraints.txt ".[train,cpu-serve,serve,eval]" \
    && python -m pip uninstall -y socratic-tutor \
    && rm -rf tutor handler.py build ./*.egg-info

COPY . .
COPY --from=webui /src/server/webui/static/vendor server/webui/static/vendor
RUN python -m pip install --no-cache-dir --no-deps -c constraints.txt -e . \
    && socratic --help > /dev/null \
    && python -c "import server.web as w; assert not w.missing_vendor_files(), w.missing_vendor_files()" \
    && useradd --create-home --uid 1000 tutor \
    && mkdir -p /models && chown -R 1000:1000 /models /app

# Unprivileged: it writes runs/ and reports/ under /app, and /models (a fresh named volume
# mounted there takes this owner).
USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["socratic"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# Training image: Unsloth QLoRA on a RunPod GPU pod, then export + Hub push, then the pod removes
# itself (docker/pod_entrypoint.py). Build from the repository root:
#
#   docker build -f docker/train.Dockerfile -t ghcr.io/me/socratic-train:0.1.0 .
#
# torch, torchvision and triton come from the base image (unsloth 2026.10.x: torch >= 2.4, < 2.15);
# everything else is pinned by constraints.txt, the same file CI installs from.
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="socratic-tutor-train" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.description="Fine-tune Qwen2.5-7B-Instruct into a Socratic tutor (Unsloth QLoRA), export and push to the Hugging Face Hub" \
      org.opencontainers.image.licenses="Apache-2.0"

# The base's conda Python is marked externally managed; this image is single-purpose, so pip may
# install into it. No caches, no bytecode written at build time, logs unbuffered.
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HF_XET_HIGH_PERFORMANCE=1 \
    SOCRATIC_HOME=/app

WORKDIR /app

# Dependencies first (a code change does not reinstall them): a placeholder package lets pip
# resolve the extras; the real code and its editable install follow.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir -p tutor && touch tutor/__init__.py handler.py \
    && python -m pip install --no-cache-dir -c constraints.txt ".[train,gpu]" \
    && python -m pip uninstall -y socratic-tutor \
    && rm -rf tutor handler.py build ./*.egg-info

COPY . .
# Editable, so tutor/paths.py finds configs/ and data/ in /app (SOCRATIC_HOME says so too).
RUN python -m pip install --no-cache-dir --no-deps -c constraints.txt -e . \
    && socratic --help > /dev/null

# Pods run as root: RunPod mounts the network volume root-owned at /runpod-volume or /workspace.
ENTRYPOINT ["python", "/app/docker/pod_entrypoint.py"]

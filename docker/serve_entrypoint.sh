#!/usr/bin/env bash
# Serving image entry point: one image, two modes chosen by MODE.
#   MODE=gateway     socratic serve: vLLM engine on 127.0.0.1 + the OpenAI-compatible gateway on
#                    0.0.0.0:$PORT (engine flags from MODEL, SERVED_MODEL_NAME, MAX_MODEL_LEN, ...)
#   MODE=serverless  python handler.py: the RunPod serverless worker (same engine, same request rules)
# MODE unset: serverless inside a RunPod queue worker (RunPod sets RUNPOD_WEBHOOK_GET_JOB or
# RUNPOD_ENDPOINT_ID there), else gateway. A load-balancing endpoint (PORT_HEALTH set) serves
# HTTP itself: gateway. An explicit MODE always wins; one log line says which mode and why.
# MODEL_NAME (worker-vllm's name) stands in for MODEL when MODEL is unset.
# MODEL (and LORA_ADAPTER) is a local directory or a Hub repo id. A repo id is downloaded once into
# HF_HOME, which is put on the network volume (/runpod-volume/huggingface) when one is mounted;
# a model baked into the image at build time (/models/baked) is used when MODEL is empty.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${PORT:-8000}"
if [[ -n "${MODE:-}" ]]; then
  why="MODE is set"
elif [[ -n "${PORT_HEALTH:-}" ]]; then
  MODE=gateway why="PORT_HEALTH is set (a RunPod load-balancing endpoint)"
elif [[ -n "${RUNPOD_WEBHOOK_GET_JOB:-}" ]]; then
  MODE=serverless why="RUNPOD_WEBHOOK_GET_JOB is set (a RunPod queue worker)"
elif [[ -n "${RUNPOD_ENDPOINT_ID:-}" ]]; then
  MODE=serverless why="RUNPOD_ENDPOINT_ID is set (a RunPod serverless worker)"
else
  MODE=gateway why="no MODE and no RunPod worker variables"
fi
echo "serve: mode $MODE ($why)"
MODEL="${MODEL:-${MODEL_NAME:-}}"

if [[ -z "${HF_HOME:-}" && -d /runpod-volume ]]; then
  export HF_HOME=/runpod-volume/huggingface
fi
if [[ -z "${MODEL:-}" && -f "${BAKED_MODEL_DIR:-/models/baked}/config.json" ]]; then
  MODEL="${BAKED_MODEL_DIR:-/models/baked}"
fi
if [[ -z "${MODEL:-}" ]]; then
  echo "serve: error: set MODEL to a model directory or a Hub repo id (or bake one with --build-arg MODEL_ID=...)" >&2
  exit 2
fi
if [[ ! -d "$MODEL" ]]; then
  echo "serve: fetching $MODEL into ${HF_HOME:-the Hugging Face cache}"
  fetched="$(python "$here/fetch_model.py" "$MODEL" ${MODEL_REVISION:+--revision "$MODEL_REVISION"})"
  MODEL="$(printf '%s\n' "$fetched" | tail -n 1)"
fi
export MODEL
if [[ -n "${LORA_ADAPTER:-}" && ! -d "$LORA_ADAPTER" ]]; then
  echo "serve: fetching adapter $LORA_ADAPTER into ${HF_HOME:-the Hugging Face cache}"
  fetched="$(python "$here/fetch_model.py" "$LORA_ADAPTER")"
  LORA_ADAPTER="$(printf '%s\n' "$fetched" | tail -n 1)"
  export LORA_ADAPTER
fi

case "$MODE" in
  gateway)
    exec socratic serve --model "$MODEL" --engine vllm --host 0.0.0.0 --port "$PORT"
    ;;
  serverless)
    export ENGINE="${ENGINE:-vllm}"
    exec python "$here/../handler.py"
    ;;
  *)
    echo "serve: error: MODE must be gateway or serverless (got '$MODE')" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The prepared GPU check: on one CUDA machine with no network, in under 10 minutes, the GPU job's
# first real run: a random-weight Qwen2.5-7B-architecture model, a few QLoRA steps with packing
# on the hf and the unsloth backend, the unsloth run's export (child process) and its verify, a few
# DPO steps on the unsloth backend from that run (TRL + Unsloth, the bundled pairs), and
# the `socratic bench train` figures. Everything but torch travels with the checkout as wheels in
# .whl/ (git-ignored), installed into .gpu-site/ (git-ignored, so a warm machine keeps it).
#
#   scripts/gpu_check.sh --dry-run        # anywhere: the plan, the wheels to carry, their size
#   scripts/gpu_check.sh --pack           # networked machine: fill .whl/ (downloads + slimming)
#   scripts/gpu_check.sh "$OUT"           # the CUDA machine: $OUT/gpu_check.json + gpu_check.log
#
# PYTHON picks the interpreter (default python3: the machine's, with its torch);
# GPU_PYTHON_VERSION the Python version wheels are downloaded for (default 3.12).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/gpu_check.sh [--dry-run [--bare] | --pack [--bare] | --install-only] [OUT_DIR]

The GPU job's first real run on one CUDA machine, offline, in under 10 minutes (570 s budget).

  OUT_DIR         folder for gpu_check.json (figures: tokens/s, step s, peak GiB, MFU per
                  backend, unsloth/hf ratio, each step's outcome) and gpu_check.log
                  (default: $OUT if set, else reports/gpu-check)
  --dry-run       print the steps and commands it would run, the wheels this interpreter lacks
                  (pinned in constraints.txt) with the pip download line, and whether they fit
                  the 64 MiB a device call carries with the working tree; runs nothing
  --pack          download those wheels into .whl/ (needs the network) and slim unsloth
                  (no studio/), bitsandbytes (CUDA 13.0 library only) and pyarrow
  --bare          with --dry-run or --pack: for a machine that has torch and nothing else
  --install-only  install .whl/*.whl into .gpu-site/ and stop (wheels carried over several calls)
  -h, --help      this text
EOF
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
PYTHON="${PYTHON:-python3}"
site="$repo/.gpu-site"
export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"

install_wheels() {
  shopt -s nullglob
  local wheels=(.whl/*.whl)
  if ((${#wheels[@]})); then
    echo "gpu check: installing ${#wheels[@]} carried wheels into .gpu-site/"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --upgrade --target "$site" "${wheels[@]}"
  fi
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --dry-run|--pack) exec "$PYTHON" -m bench.deploy_check "$@" ;;
  --install-only) install_wheels; exit 0 ;;
  -*) usage >&2; exit 2 ;;
esac

out="${1:-${OUT:-reports/gpu-check}}"
mkdir -p "$out"
# Offline: nothing may reach a hub; no statistics download, no W&B.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
export WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
unset WANDB_API_KEY
{
  install_wheels
  "$PYTHON" -m bench.gpu_run "$out"
} 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"

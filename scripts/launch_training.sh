#!/usr/bin/env bash
# Launch the training job on a RunPod GPU pod with one command. The pod trains, exports the merged
# model to the Hugging Face Hub and removes itself (docker/pod_entrypoint.py), so nothing keeps
# billing. Needs runpodctl (configured, or RUNPOD_API_KEY set) and python3.
#
#   scripts/launch_training.sh --image ghcr.io/you/socratic-tutor-train:0.1.0 \
#     --gpu "NVIDIA GeForce RTX 4090" --hub-repo you/socratic-tutor-7b --follow
#
# Defaults come from .env (ENV_FILE=... picks another file); the environment wins over .env and
# flags win over both. Secrets are referenced as RunPod secrets ({{ RUNPOD_SECRET_<name> }}),
# never pasted into the command. --dry-run prints the exact runpodctl command and exits.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/launch_training.sh --image IMAGE --gpu GPU_TYPE --hub-repo REPO_ID [options]

Create a RunPod GPU pod that trains, pushes the model to the Hub and removes itself.

required (or from .env):
  --image IMAGE            training image in a registry RunPod can pull (TRAIN_IMAGE)
  --gpu GPU_TYPE           GPU id from `runpodctl gpu list`, e.g. "NVIDIA GeForce RTX 4090" (GPU_TYPE)
  --hub-repo REPO_ID       Hub repo for the merged model; the adapter goes to REPO_ID-lora (HUB_REPO_ID)

options:
  --config FILE            training preset inside the image (CONFIG; default configs/qwen2.5-7b-qlora.yaml)
  --volume-gb N            pod volume size, GB (VOLUME_GB; default 100)
  --network-volume ID      attach this network volume instead; it outlives the pod (NETWORK_VOLUME_ID)
  --gpu-count N            GPUs in the pod (GPU_COUNT; default 1); above 1 the job runs under
                           `accelerate launch` with the hf backend (DDP; unsloth is single-GPU)
                           and train.grad_accum=8/N, keeping the effective batch at 16
  --container-disk-gb N    container disk, GB (CONTAINER_DISK_GB; default 60)
  --cloud-type TYPE        SECURE or COMMUNITY (CLOUD_TYPE; default SECURE)
  --min-cuda-version V     only hosts whose driver runs this CUDA; the image is built on CUDA 13.0
                           (MIN_CUDA_VERSION; default 13.0)
  --name NAME              pod name (POD_NAME; default socratic-tutor-train)
  --hf-secret NAME         RunPod secret holding the HF token (HF_SECRET_NAME; default hf_token)
  --wandb-secret NAME      RunPod secret holding a W&B key (default: no W&B)
  --max-runtime-hours H    watchdog in the pod, hours, 0 = off (MAX_RUNTIME_HOURS; default 24);
                           the pod is also created with --terminate-after H+1 hours
  --grace-seconds S        wait after a failure before self-removal, s (FAILURE_GRACE_SECONDS; default 600)
  --run-name NAME          run directory under runs/ on the volume (RUN_NAME; default: config name)
  --train-args "K=V ..."   extra section.key=value overrides for `socratic train` (TRAIN_ARGS),
                           e.g. "data.train_files=[me/socratic-dialogues]" (a Hub dataset)
  --private                create the Hub repos private (HUB_PRIVATE=1)
  --keep-pod               never remove the pod (KEEP_POD=1; it keeps billing)
  --poll-seconds S         status poll interval for --follow, s (FOLLOW_POLL_SECONDS; default 30)
  --dry-run                print the exact runpodctl command and exit
  --follow                 after creating the pod, poll it until it is gone, then print the Hub URL
  -h, --help               this help
EOF
}

die() {
  echo "launch_training: error: $*" >&2
  exit 2
}

# Known keys only, KEY=VALUE lines, optional quotes; nothing in the file is executed.
load_env_file() {
  local file="$1" line key value
  [[ -f "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
    case "$key" in
      TRAIN_IMAGE | GPU_TYPE | GPU_COUNT | HUB_REPO_ID | HUB_PRIVATE | CONFIG | VOLUME_GB | \
        NETWORK_VOLUME_ID | CONTAINER_DISK_GB | CLOUD_TYPE | POD_NAME | HF_SECRET_NAME | \
        MAX_RUNTIME_HOURS | FAILURE_GRACE_SECONDS | KEEP_POD | RUN_NAME | TRAIN_ARGS | \
        FOLLOW_POLL_SECONDS | MIN_CUDA_VERSION | RUNPOD_API_KEY)
        if [[ -z "${!key:-}" ]]; then
          printf -v "$key" '%s' "$value"
          export "${key?}"
        fi
        ;;
    esac
  done <"$file"
}

# A shell word that pastes back exactly: bare when safe, else single-quoted.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
load_env_file "${ENV_FILE:-$repo_root/.env}"

image="${TRAIN_IMAGE:-}"
gpu="${GPU_TYPE:-}"
hub_repo="${HUB_REPO_ID:-}"
config="${CONFIG:-configs/qwen2.5-7b-qlora.yaml}"
volume_gb="${VOLUME_GB:-100}"
network_volume="${NETWORK_VOLUME_ID:-}"
gpu_count="${GPU_COUNT:-1}"
disk_gb="${CONTAINER_DISK_GB:-60}"
cloud="${CLOUD_TYPE:-SECURE}"
min_cuda="${MIN_CUDA_VERSION:-13.0}"
name="${POD_NAME:-socratic-tutor-train}"
hf_secret="${HF_SECRET_NAME:-hf_token}"
wandb_secret=""
max_hours="${MAX_RUNTIME_HOURS:-24}"
grace="${FAILURE_GRACE_SECONDS:-600}"
run_name="${RUN_NAME:-}"
train_args="${TRAIN_ARGS:-}"
private="${HUB_PRIVATE:-0}"
keep_pod="${KEEP_POD:-0}"
poll="${FOLLOW_POLL_SECONDS:-30}"
dry_run=0
follow=0
volume_flag=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=1; shift; continue ;;
    --follow) follow=1; shift; continue ;;
    --private) private=1; shift; continue ;;
    --keep-pod) keep_pod=1; shift; continue ;;
  esac
  [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
  case "$1" in
    --image) image="$2" ;;
    --gpu) gpu="$2" ;;
    --hub-repo) hub_repo="$2" ;;
    --config) config="$2" ;;
    --volume-gb) volume_gb="$2"; volume_flag=1 ;;
    --network-volume) network_volume="$2" ;;
    --gpu-count) gpu_count="$2" ;;
    --container-disk-gb) disk_gb="$2" ;;
    --cloud-type) cloud="$2" ;;
    --min-cuda-version) min_cuda="$2" ;;
    --name) name="$2" ;;
    --hf-secret) hf_secret="$2" ;;
    --wandb-secret) wandb_secret="$2" ;;
    --max-runtime-hours) max_hours="$2" ;;
    --grace-seconds) grace="$2" ;;
    --run-name) run_name="$2" ;;
    --train-args) train_args="$2" ;;
    --poll-seconds) poll="$2" ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done

[[ -n "$image" ]] || die "--image is required (or TRAIN_IMAGE in .env)"
[[ -n "$gpu" ]] || die "--gpu is required (or GPU_TYPE in .env); list ids with \`runpodctl gpu list\`"
[[ "$hub_repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
  die "--hub-repo must look like owner/name (got '${hub_repo}')"
[[ "$volume_flag" == 1 && -n "$network_volume" ]] &&
  die "--volume-gb and --network-volume exclude each other"
for pair in "--volume-gb:$volume_gb" "--gpu-count:$gpu_count" "--container-disk-gb:$disk_gb" \
  "--grace-seconds:$grace" "--poll-seconds:$poll"; do
  [[ "${pair#*:}" =~ ^[0-9]+$ ]] || die "${pair%%:*} must be a whole number (got '${pair#*:}')"
done
[[ "$max_hours" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--max-runtime-hours must be a number (got '$max_hours')"
[[ "$cloud" == SECURE || "$cloud" == COMMUNITY ]] || die "--cloud-type must be SECURE or COMMUNITY"
[[ "$min_cuda" =~ ^[0-9]+[.][0-9]+$ ]] || die "--min-cuda-version must look like 13.0 (got '$min_cuda')"
[[ "$hf_secret" =~ ^[A-Za-z0-9_-]+$ ]] || die "--hf-secret must be a RunPod secret name"
command -v python3 >/dev/null || die "python3 is needed to build the --env JSON"

# The pod's environment as JSON. Secrets are RunPod secret references, resolved inside RunPod.
env_pairs=(CONFIG "$config" HUB_REPO_ID "$hub_repo" HUB_PRIVATE "$private" KEEP_POD "$keep_pod"
  MAX_RUNTIME_HOURS "$max_hours" FAILURE_GRACE_SECONDS "$grace" VOLUME_DIR /workspace
  HF_TOKEN "{{ RUNPOD_SECRET_${hf_secret} }}")
if [[ "$gpu_count" -gt 1 ]]; then
  env_pairs+=(TRAIN_LAUNCHER "accelerate launch --num_processes $gpu_count -m trainer.cli")
  # Keep the preset's effective batch (per-GPU batch x grad_accum, 2 x 8 = 16 for the 7B preset):
  # split the accumulation over the GPUs. --train-args come after, so train.grad_accum there wins.
  accum="$(sed -nE 's/^[[:space:]]+grad_accum:[[:space:]]*([0-9]+).*/\1/p' "$repo_root/$config" \
    2>/dev/null | head -n 1)"
  multi_gpu_args="train.backend=hf"
  if [[ -n "$accum" ]] && ((accum % gpu_count == 0)); then
    multi_gpu_args+=" train.grad_accum=$((accum / gpu_count))"
  else
    echo "launch_training: warning: train.grad_accum (${accum:-unknown}) of $config does not" \
      "divide by $gpu_count GPUs: the effective batch grows ${gpu_count}x unless --train-args" \
      "sets train.grad_accum" >&2
  fi
  train_args="$multi_gpu_args${train_args:+ $train_args}"
fi
[[ -n "$run_name" ]] && env_pairs+=(RUN_NAME "$run_name")
[[ -n "$train_args" ]] && env_pairs+=(TRAIN_ARGS "$train_args")
[[ -n "$wandb_secret" ]] && env_pairs+=(WANDB_API_KEY "{{ RUNPOD_SECRET_${wandb_secret} }}")
env_json="$(python3 -c 'import json, sys; a = sys.argv[1:]; print(json.dumps(dict(zip(a[::2], a[1::2]))))' "${env_pairs[@]}")"

cmd=(runpodctl pod create --name "$name" --image "$image" --gpu-id "$gpu" --gpu-count "$gpu_count"
  --cloud-type "$cloud" --min-cuda-version "$min_cuda" --container-disk-in-gb "$disk_gb"
  --volume-mount-path /workspace)
if [[ -n "$network_volume" ]]; then
  cmd+=(--network-volume-id "$network_volume")
else
  cmd+=(--volume-in-gb "$volume_gb")
fi
cmd+=(--env "$env_json")
if python3 -c 'import sys; sys.exit(float(sys.argv[1]) <= 0)' "$max_hours"; then
  # RunPod's own backstop, one hour after the in-pod watchdog.
  terminate_at="$(python3 -c 'import datetime as d, sys; print((d.datetime.now(d.timezone.utc) + d.timedelta(hours=float(sys.argv[1]) + 1)).strftime("%Y-%m-%dT%H:%M:%SZ"))' "$max_hours")"
  cmd+=(--terminate-after "$terminate_at")
fi
cmd+=(--output json)

printed=""
for word in "${cmd[@]}"; do printed+="$(quote "$word") "; done
if [[ "$dry_run" == 1 ]]; then
  echo "${printed% }"
  exit 0
fi

command -v runpodctl >/dev/null ||
  die "runpodctl not found: install it (docs/deployment.md) or use --dry-run to see the command"
echo "launch_training: ${printed% }" >&2
created="$("${cmd[@]}")" || die "runpodctl pod create failed"
pod_id="$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')" ||
  die "could not read the pod id from: $created"
echo "pod $pod_id created: it trains, pushes to https://huggingface.co/$hub_repo and removes itself"
echo "status: runpodctl pod get $pod_id    stop it: runpodctl pod delete $pod_id"
[[ "$follow" == 1 ]] || exit 0

# --follow: poll until the pod is gone (it removes itself when the job ends).
last="" errors=0
while true; do
  if out="$(runpodctl pod get "$pod_id" --output json 2>&1)"; then
    errors=0
    status="$(printf '%s' "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("desiredStatus", "?"))' 2>/dev/null || echo "?")"
    if [[ "$status" != "$last" ]]; then
      echo "$(date -u +%H:%M:%SZ) pod $pod_id: $status"
      last="$status"
    fi
  elif grep -qiE '404|not found' <<<"$out"; then
    echo "$(date -u +%H:%M:%SZ) pod $pod_id is gone (removed itself)"
    echo "model: https://huggingface.co/$hub_repo    adapter: https://huggingface.co/$hub_repo-lora"
    echo "(no model there means the job failed: see runs/ on the volume for pod.log and train.log)"
    exit 0
  else
    errors=$((errors + 1))
    echo "$(date -u +%H:%M:%SZ) cannot read pod $pod_id ($errors/5): ${out##*$'\n'}" >&2
    [[ "$errors" -lt 5 ]] || { echo "launch_training: error: giving up following $pod_id" >&2; exit 1; }
  fi
  sleep "$poll"
done

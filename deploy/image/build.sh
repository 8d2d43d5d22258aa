#!/usr/bin/env bash
# `make image`: build the daemon image alphawatch:<version> (also tagged latest) and the example
# trainer alphawatch-trainer:<version> (and latest) from the Dockerfile, with no manual step,
# also on a machine that reaches neither Docker Hub nor the PyTorch CPU index:
#
#   1. a Docker engine must answer (deploy/image/engine.sh starts dockerd if it can);
#   2. base image: $PYTHON_IMAGE (default: the Dockerfile's, python:3.11-slim); when it can be
#      neither found nor pulled, a stand-in made from Debian's packages (local-base.sh);
#   3. torch: from the CPU index ($TORCH_INDEX_URL); when that index is unreachable, the wheel
#      this machine's pip resolves for $TORCH_SPEC (cached in $CACHE/wheels) goes into
#      deploy/image/wheels/ and torch's own dependencies come from PyPI.
# Both fallbacks are build arguments only: the Dockerfile's defaults stay the public sources.
#
# Environment: TORCH_SPEC (torch==2.13.0), TORCH_INDEX_URL, PYTHON_IMAGE, IMAGE
# (alphawatch), TRAINER_IMAGE (alphawatch-trainer), BUILD_LOG (send the build output there).
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE=${ALPHAWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alphawatch}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
IMAGE=${IMAGE:-alphawatch}
TRAINER_IMAGE=${TRAINER_IMAGE:-alphawatch-trainer}
LOCAL_BASE=alphawatch-local-base:bookworm
IMAGE_PYTHON=3.11   # the Python of both bases (python:3.11-slim, Debian bookworm)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' daemon/alphawatch/__init__.py)
WHEELS=deploy/image/wheels

log() { echo "build.sh: $*"; }

deploy/image/engine.sh

# --- base image
BASE=${PYTHON_IMAGE:-$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)}
if docker image inspect "$BASE" >/dev/null 2>&1 || docker pull --quiet "$BASE" >/dev/null 2>&1; then
    log "base image $BASE"
else
    log "cannot pull $BASE: using $LOCAL_BASE, made from Debian's packages"
    deploy/image/local-base.sh "$LOCAL_BASE"
    BASE=$LOCAL_BASE
fi

# --- torch
rm -f "$WHEELS"/torch-*.whl
torch_args=(--build-arg "TORCH_SPEC=$TORCH_SPEC" --build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip('/') + '/torch/', timeout=10)" \
        "$TORCH_INDEX_URL" >/dev/null 2>&1; then
    log "torch ($TORCH_SPEC) from $TORCH_INDEX_URL"
else
    mkdir -p "$CACHE/wheels"
    pinned=${TORCH_SPEC#torch==}
    wheel=$(ls "$CACHE"/wheels/torch-"$pinned"[+-]*cp"${IMAGE_PYTHON/./}"*.whl 2>/dev/null | head -1 || true)
    if [ -z "$wheel" ]; then
        python3 -m pip download --quiet --no-deps --only-binary :all: --python-version "$IMAGE_PYTHON" \
            --platform manylinux_2_28_x86_64 "$TORCH_SPEC" -d "$CACHE/wheels"
        wheel=$(ls "$CACHE"/wheels/torch-"$pinned"[+-]*cp"${IMAGE_PYTHON/./}"*.whl | head -1)
    fi
    case "$wheel" in
        *+cpu*) ;;
        *) log "WARNING: $wheel is not the CPU build: the image will carry CUDA libraries" ;;
    esac
    ln -f "$wheel" "$WHEELS/" 2>/dev/null || cp "$wheel" "$WHEELS/"
    torch_version=$(basename "$wheel" | cut -d- -f2)
    torch_args=(--build-arg "TORCH_SPEC=torch==$torch_version" --build-arg "TORCH_INDEX_URL=https://pypi.org/simple")
    log "$TORCH_INDEX_URL unreachable: torch from $(basename "$wheel") (this machine's pip), its dependencies from PyPI"
fi

# --- build (BuildKit when the buildx plugin is there, else the classic builder)
if [ -z "${DOCKER_BUILDKIT:-}" ]; then
    if docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=1; else export DOCKER_BUILDKIT=0; fi
fi
common=(--build-arg "PYTHON_IMAGE=$BASE" --build-arg "VERSION=$VERSION" "${torch_args[@]}")
build() {
    if [ -n "${BUILD_LOG:-}" ]; then
        docker build "$@" . >>"$BUILD_LOG" 2>&1 || { tail -40 "$BUILD_LOG" >&2; return 1; }
    else
        docker build "$@" .
    fi
}
started=$(date +%s)
build "${common[@]}" --target trainer -t "$TRAINER_IMAGE:$VERSION" -t "$TRAINER_IMAGE:latest"
build "${common[@]}" --target alphawatch -t "$IMAGE:$VERSION" -t "$IMAGE:latest"
rm -f "$WHEELS"/torch-*.whl
for name in "$IMAGE:$VERSION" "$TRAINER_IMAGE:$VERSION"; do
    log "$name $(docker image inspect -f '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1 / 1e6}')"
done
log "built in $(( $(date +%s) - started )) s"

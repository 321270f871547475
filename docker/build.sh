#!/usr/bin/env bash
# Build Kodify's two images from this checkout, tagged with Kodify's version (and latest):
#
#   $KODIFY_REGISTRY/kodify:$KODIFY_VERSION                (docker/Dockerfile)
#   $KODIFY_REGISTRY/kodify-model-server:$KODIFY_VERSION   (docker/model-server/Dockerfile)
#
# Usage: docker/build.sh [--server-only | --model-server-only] [DOCKER BUILD OPTIONS…]
#   e.g. docker/build.sh --pull;  KODIFY_REGISTRY=artifactory.mts.ai/kodify docker/build.sh
# VLLM_VERSION picks the official vLLM image the model server is built on (default: the
# one pinned in docker/model-server/Dockerfile).  Then: push.sh (a registry) or save.sh
# (files for an air-gapped host).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/images.sh"

build_server=1
build_model_server=1
extra=()
for arg in "$@"; do
    case "$arg" in
        --server-only) build_model_server=0 ;;
        --model-server-only) build_server=0 ;;
        -h | --help)
            sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) extra+=("$arg") ;;
    esac
done

cd "$KODIFY_ROOT"
if [ "$build_server" = 1 ]; then
    image="$KODIFY_REGISTRY/$KODIFY_IMAGE"
    echo "==> $image:$KODIFY_VERSION"
    "$DOCKER" build --file docker/Dockerfile \
        --build-arg "KODIFY_VERSION=$KODIFY_VERSION" \
        --tag "$image:$KODIFY_VERSION" --tag "$image:latest" \
        ${extra[@]+"${extra[@]}"} .
fi
if [ "$build_model_server" = 1 ]; then
    for launcher in docker/model-server/model_server.py docker/model-server/launch_plan.py; do
        [ -f "$launcher" ] || {
            echo "$launcher is missing: the model server's launcher" >&2
            exit 1
        }
    done
    image="$KODIFY_REGISTRY/$MODEL_SERVER_IMAGE"
    vllm_args=()
    [ -z "${VLLM_VERSION:-}" ] || vllm_args=(--build-arg "VLLM_VERSION=$VLLM_VERSION")
    echo "==> $image:$KODIFY_VERSION"
    "$DOCKER" build --file docker/model-server/Dockerfile \
        --build-arg "KODIFY_VERSION=$KODIFY_VERSION" ${vllm_args[@]+"${vllm_args[@]}"} \
        --tag "$image:$KODIFY_VERSION" --tag "$image:latest" \
        ${extra[@]+"${extra[@]}"} .
fi
echo "Built (KODIFY_REGISTRY=$KODIFY_REGISTRY KODIFY_VERSION=$KODIFY_VERSION in .env runs them):"
[ "$build_server" = 0 ] || echo "  $KODIFY_REGISTRY/$KODIFY_IMAGE:$KODIFY_VERSION"
[ "$build_model_server" = 0 ] || echo "  $KODIFY_REGISTRY/$MODEL_SERVER_IMAGE:$KODIFY_VERSION"

#!/usr/bin/env bash
# Push Kodify's images to a private registry (e.g. the customers' Artifactory), from where
# the hosts pull them (KODIFY_REGISTRY in their .env).
#
# Usage: docker/push.sh REGISTRY [--with-deps]
#   REGISTRY     e.g. artifactory.mts.ai/kodify (or KODIFY_PUSH_REGISTRY); `docker login
#                artifactory.mts.ai` first
#   --with-deps  also PostgreSQL and Redis (compose.yml's versions), for hosts that reach
#                no other registry: then KODIFY_DEPS_REGISTRY=REGISTRY in their .env
# The images pushed are $KODIFY_REGISTRY/kodify and kodify-model-server at
# $KODIFY_VERSION, as build.sh or load.sh left them on this machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/images.sh"

target=${KODIFY_PUSH_REGISTRY:-}
with_deps=0
for arg in "$@"; do
    case "$arg" in
        --with-deps) with_deps=1 ;;
        -h | --help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "push.sh: unknown option $arg" >&2
            exit 2
            ;;
        *) target=$arg ;;
    esac
done
if [ -z "$target" ]; then
    echo "usage: docker/push.sh REGISTRY [--with-deps]   (e.g. artifactory.mts.ai/kodify)" >&2
    exit 2
fi
target=${target%/}

push() {
    # $1: a local image, $2: its name in the registry
    if ! "$DOCKER" image inspect "$1" >/dev/null 2>&1; then
        echo "push.sh: no image $1 here: build it (docker/build.sh) or load it (docker/load.sh)" >&2
        exit 1
    fi
    [ "$1" = "$2" ] || "$DOCKER" tag "$1" "$2"
    echo "==> $2"
    if ! "$DOCKER" push "$2"; then
        echo "push.sh: pushing $2 failed; log in first: docker login ${target%%/*}" >&2
        exit 1
    fi
}

for name in "$KODIFY_IMAGE" "$MODEL_SERVER_IMAGE"; do
    push "$KODIFY_REGISTRY/$name:$KODIFY_VERSION" "$target/$name:$KODIFY_VERSION"
done
if [ "$with_deps" = 1 ]; then
    for image in $(dependency_images); do
        "$DOCKER" image inspect "$image" >/dev/null 2>&1 || "$DOCKER" pull "$image"
        push "$image" "$target/$image"
    done
fi
echo "Pushed. On the hosts, in .env: KODIFY_REGISTRY=$target KODIFY_VERSION=$KODIFY_VERSION"
[ "$with_deps" = 0 ] || echo "  and KODIFY_DEPS_REGISTRY=$target"

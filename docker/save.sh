#!/usr/bin/env bash
# Save every image compose.yml runs into files for an air-gapped host (then load.sh there):
# Kodify's two images, PostgreSQL and Redis, one compressed file each, and SHA256SUMS.
#
# Usage: docker/save.sh [OUTPUT_DIR] [--without-model-server] [--no-pull]
#   OUTPUT_DIR              default: ./kodify-images-$KODIFY_VERSION
#   --without-model-server  leave the large vLLM image out (an upgrade of Kodify alone)
#   --no-pull               do not pull PostgreSQL and Redis when they are not here
# The weights are not in these files: copy the model's folder (/opt/mtsai/models/<model>)
# on its own, e.g. tar -C /opt/mtsai -cf models.tar models/Qwen2.5-Coder-7B-Instruct.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/images.sh"

out=""
model_server=1
pull=1
for arg in "$@"; do
    case "$arg" in
        --without-model-server) model_server=0 ;;
        --no-pull) pull=0 ;;
        -h | --help)
            sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "save.sh: unknown option $arg" >&2
            exit 2
            ;;
        *) out=$arg ;;
    esac
done
out=${out:-kodify-images-$KODIFY_VERSION}
mkdir -p "$out"

compress=(gzip -1)
command -v pigz >/dev/null 2>&1 && compress=(pigz -1)

images=("$KODIFY_REGISTRY/$KODIFY_IMAGE:$KODIFY_VERSION")
[ "$model_server" = 0 ] || images+=("$KODIFY_REGISTRY/$MODEL_SERVER_IMAGE:$KODIFY_VERSION")
while read -r image; do
    [ -n "$image" ] && images+=("$image")
done < <(dependency_images)

files=()
for image in "${images[@]}"; do
    if ! "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
        case "$image" in
            "$KODIFY_REGISTRY"/*)
                echo "save.sh: no image $image here: build it first (docker/build.sh)" >&2
                exit 1
                ;;
        esac
        if [ "$pull" = 1 ]; then
            "$DOCKER" pull "$image"
        else
            echo "save.sh: no image $image here (and --no-pull)" >&2
            exit 1
        fi
    fi
    name=${image##*/}
    file="${name//:/-}.tar.gz"
    echo "==> $image -> $out/$file"
    "$DOCKER" save "$image" | "${compress[@]}" >"$out/$file.part"
    mv "$out/$file.part" "$out/$file"
    files+=("$file")
done
(cd "$out" && sha256sum "${files[@]}" >SHA256SUMS)
echo "Saved to $out/. Copy the folder to the host, then: docker/load.sh $out"

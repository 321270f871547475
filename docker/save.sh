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

compress=(gzip -1)
command -v pigz >/dev/null 2>&1 && compress=(pigz -1)

images=("$KODIFY_REGISTRY/$KODIFY_IMAGE:$KODIFY_VERSION")
[ "$model_server" = 0 ] || images+=("$KODIFY_REGISTRY/$MODEL_SERVER_IMAGE:$KODIFY_VERSION")
while read -r image; do
    [ -n "$image" ] && images+=("$image")
done < <(dependency_images)

# Every image is settled before anything is written: a run that stops at the third image
# would leave a folder that load.sh takes for a delivery, and would report the missing
# images one run at a time.
missing=()
for image in "${images[@]}"; do
    "$DOCKER" image inspect "$image" >/dev/null 2>&1 && continue
    case "$image" in
        "$KODIFY_REGISTRY"/*)
            fix="build it: docker/build.sh"
            [ "$KODIFY_REGISTRY" = kodify ] || fix="$fix, or pull it from your registry: $DOCKER pull $image"
            missing+=("$image: not here; $fix")
            ;;
        *)
            if [ "$pull" = 0 ]; then
                missing+=("$image: not here (--no-pull); pull it: $DOCKER pull $image, or run save.sh without --no-pull")
            elif ! "$DOCKER" pull "$image"; then
                missing+=("$image: not here, and pulling it failed (see above); check the network or log in, then: $DOCKER pull $image")
            fi
            ;;
    esac
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "save.sh: ${#missing[@]} image(s) missing, nothing written to $out:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi

made_out=0
[ -d "$out" ] || made_out=1
written=()
finished=0
# Leave no folder that looks complete after a failure (a full disk, an interrupted docker
# save): SHA256SUMS comes last, and what this run wrote goes, since a rerun writes it all again.
cleanup() {
    [ "$finished" = 1 ] && return
    local file
    for file in ${written[@]+"${written[@]}"}; do
        rm -f "$out/$file" "$out/$file.part"
    done
    rm -f "$out/SHA256SUMS" "$out/SHA256SUMS.part"
    [ "$made_out" = 0 ] || rmdir "$out" 2>/dev/null || true
    echo "save.sh: saving failed; removed what this run wrote to $out: run it again" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out"
# A SHA256SUMS from an earlier run would vouch for files this run replaces.
rm -f "$out/SHA256SUMS"
files=()
for image in "${images[@]}"; do
    name=${image##*/}
    file="${name//:/-}.tar.gz"
    echo "==> $image -> $out/$file"
    written+=("$file")
    "$DOCKER" save "$image" | "${compress[@]}" >"$out/$file.part"
    mv "$out/$file.part" "$out/$file"
    files+=("$file")
done
(cd "$out" && sha256sum "${files[@]}" >SHA256SUMS.part && mv SHA256SUMS.part SHA256SUMS)
finished=1
echo "Saved to $out/. Copy the folder to the host, then: docker/load.sh $out"

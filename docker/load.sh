#!/usr/bin/env bash
# Load the image files written by save.sh on an air-gapped host.
#
# Usage: docker/load.sh [DIR | FILE.tar.gz …]   (default: the current folder)
# Checks the files against SHA256SUMS when it is there, then `docker load`s each.  Then
# set KODIFY_VERSION (and KODIFY_REGISTRY, if it was not the default) in .env as printed,
# and `docker compose up -d`.  To serve several hosts from an internal registry instead:
# docker/push.sh REGISTRY --with-deps.
set -euo pipefail
DOCKER=${DOCKER:-docker}

files=()
dirs=()
[ "$#" -gt 0 ] || set -- .
for arg in "$@"; do
    case "$arg" in
        -h | --help)
            sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
    esac
    if [ -d "$arg" ]; then
        dirs+=("$arg")
        for file in "$arg"/*.tar.gz "$arg"/*.tar; do
            [ -e "$file" ] && files+=("$file")
        done
    elif [ -f "$arg" ]; then
        files+=("$arg")
    else
        echo "load.sh: $arg: no such file or folder" >&2
        exit 2
    fi
done
if [ "${#files[@]}" -eq 0 ]; then
    echo "load.sh: no image files (*.tar.gz) in $*" >&2
    exit 1
fi

for dir in ${dirs[@]+"${dirs[@]}"}; do
    if [ -f "$dir/SHA256SUMS" ]; then
        echo "==> checking $dir/SHA256SUMS"
        (cd "$dir" && sha256sum --check --quiet SHA256SUMS) || {
            echo "load.sh: the files in $dir do not match SHA256SUMS (copied incompletely?)" >&2
            exit 1
        }
    fi
done

loaded=()
for file in "${files[@]}"; do
    echo "==> $file"
    output=$("$DOCKER" load --input "$file")
    echo "$output"
    while read -r image; do
        [ -n "$image" ] && loaded+=("$image")
    done < <(printf '%s\n' "$output" | sed -n 's/^Loaded image: //p')
done

echo "Loaded ${#loaded[@]} image(s)."
for image in ${loaded[@]+"${loaded[@]}"}; do
    case "$image" in
        */kodify:*)
            echo "In .env: KODIFY_REGISTRY=${image%/kodify:*} KODIFY_VERSION=${image##*:}"
            ;;
    esac
done

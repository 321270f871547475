#!/usr/bin/env bash
# Load the image files written by save.sh on an air-gapped host.
#
# Usage: docker/load.sh [--no-checksums] [DIR | FILE.tar.gz …]   (default: the current folder)
# Checks a folder's files against its SHA256SUMS (save.sh writes it last, so a folder
# without it was not saved completely: refused unless --no-checksums), then `docker
# load`s each.  Then
# set KODIFY_VERSION (and KODIFY_REGISTRY, if it was not the default) in .env as printed,
# and `docker compose up -d`.  To serve several hosts from an internal registry instead:
# docker/push.sh REGISTRY --with-deps.
set -euo pipefail
DOCKER=${DOCKER:-docker}

files=()
dirs=()
checksums=1
args=()
for arg in "$@"; do
    case "$arg" in
        -h | --help)
            sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --no-checksums) checksums=0 ;;
        -*)
            echo "load.sh: unknown option $arg" >&2
            exit 2
            ;;
        *) args+=("$arg") ;;
    esac
done
[ "${#args[@]}" -gt 0 ] || args=(.)
for arg in "${args[@]}"; do
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
    echo "load.sh: no image files (*.tar.gz) in ${args[*]}" >&2
    exit 1
fi

for dir in ${dirs[@]+"${dirs[@]}"}; do
    [ "$checksums" = 1 ] || break
    if [ ! -f "$dir/SHA256SUMS" ]; then
        echo "load.sh: $dir has no SHA256SUMS: save.sh writes it last, so the folder was not" \
            "saved or copied completely. Save it again (docker/save.sh), or load it anyway" \
            "with --no-checksums." >&2
        exit 1
    fi
    echo "==> checking $dir/SHA256SUMS"
    (cd "$dir" && sha256sum --check --quiet SHA256SUMS) || {
        echo "load.sh: the files in $dir do not match SHA256SUMS (copied incompletely?)" >&2
        exit 1
    }
    # A file the sums do not list was not written by that save.
    for file in "$dir"/*.tar.gz "$dir"/*.tar; do
        [ -e "$file" ] || continue
        if ! cut -d' ' -f3- "$dir/SHA256SUMS" | grep -qxF "${file##*/}"; then
            echo "load.sh: $file is not listed in $dir/SHA256SUMS; remove it, or load with" \
                "--no-checksums." >&2
            exit 1
        fi
    done
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

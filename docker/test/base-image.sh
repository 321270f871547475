#!/usr/bin/env bash
# Builds a stand-in for the Python base image (python:3.11-slim-bookworm) from Debian's own
# packages, for a machine that reaches Debian's archive and the package index but no image
# registry.  Prints the image's name; an image built before from the same recipe is reused.
#
#   docker build --network host --build-arg PYTHON_IMAGE=$(docker/test/base-image.sh) \
#       -f docker/Dockerfile .
#
# The image trusts this machine's local certificate authorities too (those in
# /usr/local/share/ca-certificates), so that pip inside a build reaches the package index
# through the same TLS-inspecting proxy the host's pip goes through.  It is a test image:
# nothing built on it is meant to leave this machine.
#
# Environment: DEBIAN_MIRROR (default: the first archive apt uses here, else
# deb.debian.org), DOCKER (default: docker).  Needs root (debootstrap, chroot).
set -euo pipefail

DOCKER=${DOCKER:-docker}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata

apt_mirror() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$uri" ] || uri=$(sed -n 's/^deb[[:space:]]\{1,\}\(http[^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\1/p' \
        /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}

# The image's name carries a digest of its recipe: a changed recipe or a new local
# authority builds a new image, an unchanged one is found again.
recipe=$(
    cat "${BASH_SOURCE[0]}"
    echo "$SUITE $PACKAGES $MIRROR"
    cat /usr/local/share/ca-certificates/* 2>/dev/null || true
)
digest=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
IMAGE=kodify-test/python:3.11-$SUITE-$digest

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE"
    exit 0
fi
for tool in debootstrap chroot; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "base-image.sh: $tool not found (apt-get install debootstrap)" >&2
        exit 1
    fi
done

root=$(mktemp -d "${TMPDIR:-/tmp}/kodify-base-XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "base-image.sh: debootstrap $SUITE from $MIRROR" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >&2
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >&2
fi
# What a slim image leaves out: package caches and lists (the Dockerfile runs apt-get
# update itself), documentation.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    - "$IMAGE" >&2
echo "$IMAGE"

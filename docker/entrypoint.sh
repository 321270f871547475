#!/bin/sh
# Entry point of the Kodify image (docker/Dockerfile): check that the folders Kodify
# writes to are writable, with a fix when they are not, then run the command as given
# (by default uvicorn; `celery -A kodify_site worker|beat -l info`; `python manage.py …`).
#
# Migrations are not run here: each server process runs them itself before it serves
# (a first start, or RUN_MIGRATIONS=1), under a lock: see kodify_site/startup.py.
set -eu

prepare_dir() {
    # $1: the variable's name, $2: the folder
    if ! mkdir -p "$2" 2>/dev/null || ! [ -w "$2" ]; then
        echo "Kodify cannot start: $1=$2 is not writable by user $(id -u):$(id -g)." \
            "Give it to that user (docker compose: a named volume or a tmpfs; a host" \
            "folder: chown -R $(id -u):$(id -g) on the host)." >&2
        exit 1
    fi
}

prepare_dir KODIFY_DATA_DIR "${KODIFY_DATA_DIR:-/var/lib/kodify}"
prepare_dir KODIFY_METRICS_DIR "${KODIFY_METRICS_DIR:-/run/kodify/metrics}"

if [ "$#" -eq 0 ]; then
    set -- python -m kodify_site.serve --host 0.0.0.0 --port 8000 --workers "${WORKERS:-4}"
fi
exec "$@"

#!/bin/sh
# Entry point of the Kodify image (docker/Dockerfile): check that the folders Kodify
# writes to are writable, with a fix when they are not; under compose, find the bundled
# PostgreSQL and wait for the databases and Redis; then run the command as given (by
# default uvicorn; `celery -A kodify_site worker|beat -l info`; `python manage.py …`).
#
# Migrations are not run here: each server process runs them itself before it serves
# (a first start, or RUN_MIGRATIONS=1), under a lock: see kodify_site/startup.py.
set -eu

fail() {
    echo "Kodify cannot start: $*" >&2
    exit 1
}

prepare_dir() {
    # $1: the variable's name, $2: the folder
    if ! mkdir -p "$2" 2>/dev/null || ! [ -w "$2" ]; then
        fail "$1=$2 is not writable by user $(id -u):$(id -g)." \
            "Give it to that user (docker compose: a named volume, or a tmpfs with" \
            "uid=$(id -u),gid=$(id -g); a host folder: chown -R $(id -u):$(id -g) on the host)."
    fi
}

prepare_dir KODIFY_DATA_DIR "${KODIFY_DATA_DIR:-/var/lib/kodify}"
prepare_dir KODIFY_METRICS_DIR "${KODIFY_METRICS_DIR:-/run/kodify/metrics}"

# compose.yml names its bundled PostgreSQL here: without a DB_URL of the administrator's
# own, Kodify uses that one, with the password compose gave it (compose cannot build this
# default itself).  The password then lives only in DB_URL.
if [ -n "${BUNDLED_POSTGRES_HOST:-}" ] && [ -z "${DB_URL:-}" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        fail "set POSTGRES_PASSWORD in .env for the bundled PostgreSQL" \
            "(COMPOSE_PROFILES=bundled-postgres), or DB_URL for your own."
    fi
    DB_URL="postgresql://kodify:${POSTGRES_PASSWORD}@${BUNDLED_POSTGRES_HOST}:5432/kodify"
    export DB_URL
fi
unset POSTGRES_PASSWORD BUNDLED_POSTGRES_HOST

if [ "$#" -eq 0 ]; then
    set -- python -m kodify_site.serve --host 0.0.0.0 --port 8000 --workers "${WORKERS:-4}"
fi

# Started together with its databases (compose), a container waits for them rather than
# failing its first migration; KODIFY_WAIT_SECONDS=0 (the image's default) waits not.
if [ "${KODIFY_WAIT_SECONDS:-0}" != 0 ]; then
    python /app/manage.py kodify_wait --timeout "$KODIFY_WAIT_SECONDS" || exit 1
fi
exec "$@"

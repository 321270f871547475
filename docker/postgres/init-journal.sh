#!/usr/bin/env bash
# The journal's role and database in the bundled PostgreSQL (compose service db-init).
#
# With LOGS=True and LOGS_DB_HOST naming the bundled server (`postgres`), this creates the
# role LOGS_DB_USERNAME (password LOGS_DB_PASSWORD) and the database LOGS_DB_NAME owned by
# it, and sets the role's password again, so that a changed LOGS_DB_PASSWORD takes effect
# at the next `docker compose up -d`.  Idempotent: it runs at every `up`.  Kodify creates
# the journal's tables itself (kodify_migrate).  In every other case it exits at once.
#
# Connects with the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (the
# bundled server's superuser).  BUNDLED_DB_HOST: the host name that means "the bundled
# server" (default: postgres, the compose service).
set -euo pipefail

say() { echo "kodify-init-journal: $*"; }
fail() {
    echo "kodify-init-journal: $*" >&2
    exit 1
}

logs=$(printf '%s' "${LOGS:-}" | tr '[:upper:]' '[:lower:]')
case "$logs" in
    1 | true | yes | on | y | t) ;;
    *)
        say "the journal is off (LOGS=${LOGS:-}): nothing to prepare"
        exit 0
        ;;
esac
host=${LOGS_DB_HOST:-}
if [ -z "$host" ]; then
    say "the journal is kept in Kodify's main database (LOGS_DB_HOST is empty): nothing to prepare"
    exit 0
fi
if [ "$host" != "${BUNDLED_DB_HOST:-postgres}" ]; then
    say "the journal's database is on $host, not the bundled PostgreSQL: nothing to prepare here"
    exit 0
fi
port=${LOGS_DB_PORT:-${LOGS_DB_POST:-5432}}
if [ "$port" != "${PGPORT:-5432}" ]; then
    fail "LOGS_DB_PORT=$port, but the bundled PostgreSQL listens on ${PGPORT:-5432}: set LOGS_DB_PORT=${PGPORT:-5432} in .env"
fi
name=${LOGS_DB_NAME:-kodify_journal}
user=${LOGS_DB_USERNAME:-}
password=${LOGS_DB_PASSWORD:-}
[ -n "$user" ] || fail "LOGS_DB_USERNAME is empty: set it in .env (e.g. kodify_journal)"
[ -n "$password" ] || fail "LOGS_DB_PASSWORD is empty: set it in .env (letters and digits, e.g. openssl rand -hex 32)"

for attempt in $(seq 1 30); do
    pg_isready -q && break
    [ "$attempt" -lt 30 ] || fail "PostgreSQL at ${PGHOST:-localhost}:${PGPORT:-5432} does not answer"
    sleep 2
done

# format(%I, %L) quotes the names and the password; \gexec runs the statements built.
psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
    -v role="$user" -v password="$password" -v db="$name" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password')
 WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'db', :'role') \gexec
SQL
say "journal database \"$name\" owned by \"$user\" is ready on $host:$port"

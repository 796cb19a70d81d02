#!/bin/sh
# The stand-in postgres image's entrypoint: on an empty PGDATA, a cluster whose superuser is POSTGRES_USER with
# POSTGRES_PASSWORD (password logins from other hosts), and the database POSTGRES_DB; then the server, as postgres.
set -eu
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "POSTGRES_PASSWORD is not set: the stand-in, like the official image, refuses to start without it" >&2
        exit 1
    fi
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    initdb --username="$user" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl --wait --silent --options="-c listen_addresses=''" start
    if [ "$database" != postgres ]; then
        psql --username="$user" --dbname=postgres --quiet --command="CREATE DATABASE \"$database\""
    fi
    pg_ctl --wait --silent stop
    echo "stand-in postgres: initialised $PGDATA (user $user, database $database)"
fi
if [ "$1" = postgres ]; then
    shift
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"

#!/usr/bin/env bash
# PostgreSQL for the platform tests, on 127.0.0.1:5432 only. Idempotent; called by `make test`.
# Installs Debian's postgresql when missing, starts the cluster when it is not accepting
# connections, and makes sure the role the tests use exists: andon / andon, allowed to create
# databases (each test session creates and drops its own database).
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -n -u postgres bash -c "$*"; fi
}

if ! command -v psql >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "services-postgres: installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q --no-install-recommends postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
conf=/etc/postgresql/$version/main/postgresql.conf

ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

if ready; then
    echo "services-postgres: PostgreSQL $version accepting connections on 127.0.0.1:5432"
else
    # loopback only: never listen on a routable address
    if ! grep -qE "^listen_addresses *= *'(localhost|127\.0\.0\.1)'" "$conf"; then
        echo "listen_addresses = '127.0.0.1'" | as_root tee -a "$conf" >/dev/null
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 100); do
        ready && break
        sleep 0.1
    done
    ready || { echo "services-postgres: PostgreSQL did not start" >&2; exit 1; }
    echo "services-postgres: PostgreSQL $version started on 127.0.0.1:5432"
fi

as_postgres "psql -q -v ON_ERROR_STOP=1 -d postgres" <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'andon') THEN
        CREATE ROLE andon LOGIN PASSWORD 'andon' CREATEDB;
    ELSE
        ALTER ROLE andon LOGIN PASSWORD 'andon' CREATEDB;
    END IF;
END
$$;
SQL
echo "services-postgres: role andon ready (tests create and drop their own databases)"

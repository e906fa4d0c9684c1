#!/usr/bin/env bash
# A private PostgreSQL cluster in a project-local directory, loopback only.
#   deploy/local/pg.sh start DIR PORT [--throwaway]   initdb on first use, then start; prints the URI
#   deploy/local/pg.sh stop DIR
#   deploy/local/pg.sh uri DIR PORT
# --throwaway adds fsync=off/synchronous_commit=off (tests only; the launcher keeps durable defaults).
# initdb/postgres refuse to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|uri DIR [PORT]}
dir=${2:?data directory}
port=${3:-55432}
throwaway=${4:-}

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pgbin" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

uri() { echo "postgresql://fraud@127.0.0.1:${port}/fraud"; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg mkdir -p "$dir/data" "$dir/sock"
      as_pg "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    opts="-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c max_connections=200"
    if [ "$throwaway" = "--throwaway" ]; then
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    if ! as_pg "$pgbin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$opts" start >/dev/null \
        || { tail -20 "$dir/postgres.log" >&2; exit 1; }
    fi
    # Role and database for the services (idempotent).
    as_pg psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT 'CREATE ROLE fraud LOGIN SUPERUSER' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='fraud')\gexec
SELECT 'CREATE DATABASE fraud OWNER fraud' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname='fraud')\gexec
SQL
    uri
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  uri)
    uri
    ;;
  *)
    echo "usage: pg.sh start|stop|uri DIR [PORT] [--throwaway]" >&2; exit 2 ;;
esac

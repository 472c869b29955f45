#!/usr/bin/env bash
# CI: start a PostgreSQL cluster on 127.0.0.1 for the store tests; print its URL on the last line.
# Installs the Debian `postgresql` package when initdb is missing. The role `fluxdepot` may create
# databases (each test gets a fresh one). Usage: export FLUXDEPOT_TEST_PG_URL="$(.ci/start-postgres.sh | tail -1)"
set -euo pipefail

PORT="${FLUXDEPOT_PG_PORT:-55432}"
ROOT="${FLUXDEPOT_PG_ROOT:-/tmp/fluxdepot-ci-pg}"

find_bin() {
  command -v "$1" 2>/dev/null && return
  ls -1d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}

if [[ -z "$(find_bin initdb)" ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
INITDB="$(find_bin initdb)"
PG_CTL="$(find_bin pg_ctl)"

as_pg=()
if [[ "$(id -u)" == 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$ROOT" postgres
  as_pg=(runuser -u postgres --)
fi

if [[ -f "$ROOT/data/postmaster.pid" ]]; then
  "${as_pg[@]}" "$PG_CTL" -D "$ROOT/data" -m fast -w stop >&2 || true
fi
rm -rf "$ROOT"
mkdir -p "$ROOT"
[[ ${#as_pg[@]} -gt 0 ]] && chown postgres "$ROOT"

"${as_pg[@]}" "$INITDB" -D "$ROOT/data" -U postgres --auth=trust -E UTF8 >&2
"${as_pg[@]}" "$PG_CTL" -D "$ROOT/data" -l "$ROOT/log" -w start \
  -o "-h 127.0.0.1 -p $PORT -k $ROOT -c max_connections=300 -c fsync=off" >&2

PSQL="$(find_bin psql)"
psql_() { "$PSQL" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_ -c "CREATE ROLE fluxdepot LOGIN CREATEDB" >&2
# Tests drop their databases WITH (FORCE): that terminates an autovacuum worker busy there too.
psql_ -c "GRANT pg_signal_backend TO fluxdepot" >&2
psql_ -c "CREATE DATABASE fluxdepot OWNER fluxdepot" >&2

echo "postgresql://fluxdepot@127.0.0.1:$PORT/fluxdepot"

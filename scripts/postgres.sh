#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests on loopback (port $KMS_PG_PORT, default
# 55432), with a fresh cluster in $KMS_PG_DIR (default /tmp/kms-test-pg), trust authentication
# for the user "kms", and prints nothing but its URL on stdout:
#     postgres://kms@127.0.0.1:55432
# `scripts/postgres.sh stop` stops it. Uses Debian's postgresql package (installed by
# scripts/install-deps.sh); as root the server runs as the "postgres" user (it refuses root).
set -euo pipefail
PORT="${KMS_PG_PORT:-55432}"
DIR="${KMS_PG_DIR:-/tmp/kms-test-pg}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$BIN/postgres" ] || { echo "PostgreSQL server not installed (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-start}" = stop ]; then
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi

if as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  echo "postgres://kms@127.0.0.1:$PORT"
  exit 0
fi
rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U kms >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=500 -c shared_buffers=128MB" \
  start >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
echo "postgres://kms@127.0.0.1:$PORT"

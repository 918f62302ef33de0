#!/usr/bin/env bash
# A/B benchmark of two server binaries, the same way each time, for "no slower than before":
#   ./scripts/bench-ab.sh OLD_BIN NEW_BIN [ROUNDS]     (about 1 min per round)
# Each round starts OLD then NEW (each on its own fresh SQLite data dir and port) and runs
# `kms bench --compare` (V3-signed, 32 connections, 64-byte payloads) for Encrypt and Decrypt
# against it; rounds alternate the order so that drift on this noisy machine hits both.
# The bench client is always NEW_BIN's, so only the server differs.
set -euo pipefail
OLD=${1:?old binary}; NEW=${2:?new binary}; ROUNDS=${3:-3}
DUR=${DUR:-5}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
export KMS_ACCESS_KEY_ID=BENCHAK KMS_ACCESS_KEY_SECRET=bench-secret-0123456789
export ALIBABA_CLOUD_ACCESS_KEY_ID=$KMS_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET=$KMS_ACCESS_KEY_SECRET
one() { # label bin port
  local label=$1 bin=$2 port=$3 data="$DIR/$1-$RANDOM"
  "$bin" server --listen "127.0.0.1:$port" --console-listen off --data-dir "$data" >"$data.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  sleep 1
  for action in Encrypt Decrypt; do
    "$NEW" bench --endpoint "http://127.0.0.1:$port" --action "$action" --compare \
      --concurrency 32 --duration "$DUR" --payload 64 2>/dev/null \
      | sed "s/^/$label $action | /"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for r in $(seq "$ROUNDS"); do
  echo "## round $r"
  if [ $((r % 2)) = 1 ]; then one old "$OLD" 18801; one new "$NEW" 18802
  else one new "$NEW" 18802; one old "$OLD" 18801; fi
done

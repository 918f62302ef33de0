#!/usr/bin/env bash
# BYOK benchmark: GetParametersForImport and ImportKeyMaterial latency and throughput over
# HTTP, against a release server on a fresh data dir. Run the same way each time:
#   ./scripts/bench-import.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins >/dev/null
BIN="$PWD/target/release/kms"
DIR=$(mktemp -d)
PORT=${PORT:-18700}
export KMS_ACCESS_KEY_ID=BENCHAK KMS_ACCESS_KEY_SECRET=bench-secret-0123456789
export ALIBABA_CLOUD_ACCESS_KEY_ID=$KMS_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET=$KMS_ACCESS_KEY_SECRET
"$BIN" server --listen "127.0.0.1:$PORT" --data-dir "$DIR/data" >"$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
sleep 2   # let the wrapping key pool fill
EP="http://127.0.0.1:$PORT"
echo "# GetParametersForImport, pool not drained (1 connection, 5 requests/s)"
"$BIN" bench --endpoint "$EP" --action GetParametersForImport --concurrency 1 --requests 50 --rate 5 2>/dev/null
echo "# GetParametersForImport, pool drained (4 connections, as fast as possible)"
"$BIN" bench --endpoint "$EP" --action GetParametersForImport --concurrency 4 --requests 100 2>/dev/null
echo "# ImportKeyMaterial (RSAES_OAEP_SHA_256, same material re-imported; 4 connections)"
"$BIN" bench --endpoint "$EP" --action ImportKeyMaterial --concurrency 4 --requests 3000 2>/dev/null

#!/usr/bin/env bash
# The `kms bench` figures of the wave-4 features, the same way each time:
#   ./scripts/bench-features.sh [KMS_BIN] [DURATION_SECONDS]     (default target/release/kms, 10 s)
# Starts one release server on a fresh SQLite data dir (and a second one on a fresh SoftHSM2
# token, when softhsm2-util is installed), then runs `kms bench --compare` (V3-signed, 16
# connections, 64-byte payloads; Healthz and signed DescribeRegions measured in the same run as
# ceilings) for: Encrypt (root-signed and as a RAM user with a one-key policy), Encrypt with an
# Aliyun_SM4 key, AsymmetricSign with RSA_2048, EC_P256 and EC_SM2 keys, GetSecretValue, and
# Encrypt with an HSM key beside a software key on the HSM server. Prints `kms bench` output
# as it comes; docs/performance.md quotes it.
set -euo pipefail
BIN=${1:-target/release/kms}
DUR=${2:-10}
DIR=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"' EXIT
export KMS_ACCESS_KEY_ID=BENCHAK KMS_ACCESS_KEY_SECRET=bench-secret-0123456789
export ALIBABA_CLOUD_ACCESS_KEY_ID=$KMS_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET=$KMS_ACCESS_KEY_SECRET
start() { # port data-dir [server args...]
  local port=$1 data=$2
  shift 2
  "$BIN" server --listen "127.0.0.1:$port" --console-listen off --data-dir "$data" "$@" \
    >"$data.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "server on $port did not start:"; cat "$data.log"; exit 1
}
run() { # port title bench-args...
  local port=$1 title=$2
  shift 2
  echo "### $title"
  "$BIN" bench --endpoint "http://127.0.0.1:$port" --compare --concurrency 16 --duration "$DUR" \
    --payload 64 "$@"
  echo
}
start 18811 "$DIR/sqlite"
sleep 1
run 18811 "Encrypt (root, then a RAM user allowed kms:Encrypt on the one key)" --action Encrypt --as-ram-user
run 18811 "Encrypt, Aliyun_SM4 key" --action Encrypt --key-spec Aliyun_SM4
run 18811 "AsymmetricSign, RSA_2048 (RSA_PSS_SHA_256)" --action AsymmetricSign --key-spec RSA_2048
run 18811 "AsymmetricSign, EC_P256 (ECDSA_SHA_256)" --action AsymmetricSign --key-spec EC_P256
run 18811 "AsymmetricSign, EC_SM2 (SM2DSA)" --action AsymmetricSign --key-spec EC_SM2
run 18811 "GetSecretValue (64-byte value)" --action GetSecretValue

module=/usr/lib/softhsm/libsofthsm2.so
if command -v softhsm2-util >/dev/null && [ -f "$module" ]; then
  mkdir -p "$DIR/hsm/tokens"
  echo "directories.tokendir = $DIR/hsm/tokens" > "$DIR/hsm/softhsm2.conf"
  export SOFTHSM2_CONF="$DIR/hsm/softhsm2.conf"
  softhsm2-util --init-token --free --label kmsbench --pin 1234 --so-pin 5678 >/dev/null
  (umask 077; echo 1234 > "$DIR/hsm/pin")
  start 18812 "$DIR/hsm-data" --hsm-module "$module" --hsm-token-label kmsbench \
    --hsm-pin-file "$DIR/hsm/pin"
  sleep 1
  run 18812 "Encrypt, software key (server with SoftHSM2 configured)" --action Encrypt
  run 18812 "Encrypt, ProtectionLevel=HSM key (SoftHSM2)" --action Encrypt --protection-level HSM
else
  echo "### HSM: skipped (softhsm2 not installed)"
fi

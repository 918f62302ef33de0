#!/usr/bin/env bash
# Memory under sustained load: one release server on a fresh SQLite data dir, `kms bench
# --action Encrypt --concurrency 32 --payload 64` for SECONDS (default 600), while the server's
# VmRSS and RssAnon (/proc/<pid>/status), its CPU time (/proc/<pid>/stat), its Encrypt count
# and the nonces its cache remembers (GET /metrics) are sampled every second; then TAIL more
# seconds (default 60) with no load, to show what is given back. Writes OUT.csv, OUT.svg (drawn
# by scripts/plot-rss.py) and OUT.bench.txt (default OUT: docs/rss-encrypt-10min).
#   ./scripts/bench-rss.sh [BIN] [SECONDS=600]
#   env: TAIL=60 OUT=docs/rss-encrypt-10min PORT=18730 CONCURRENCY=32
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
SECS=${2:-600}
TAIL=${TAIL:-60}
PORT=${PORT:-18730}
OUT=${OUT:-docs/rss-encrypt-10min}
CONC=${CONCURRENCY:-32}
if [ -z "$BIN" ]; then
  cargo build --release --locked --bins 2>/dev/null
  BIN="$PWD/target/release/kms"
fi
TMP=$(mktemp -d)
export KMS_ACCESS_KEY_ID=BENCHAK KMS_ACCESS_KEY_SECRET=bench-secret-0123456789
export ALIBABA_CLOUD_ACCESS_KEY_ID=$KMS_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET=$KMS_ACCESS_KEY_SECRET
SERVER="" BENCH=""
cleanup() {
  [ -n "$BENCH" ] && kill "$BENCH" 2>/dev/null
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
"$BIN" server --listen "127.0.0.1:$PORT" --console-listen off --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SERVER=$!
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.05; done
TICK=$(getconf CLK_TCK)
counts() {  # Encrypts served, nonces remembered
  curl -sf "http://127.0.0.1:$PORT/metrics" |
    awk '/^kms_requests_total\{action="Encrypt"/{s+=$2} /^kms_nonce_cache_entries /{n=$2} END{print s+0 "," n+0}'
}
sample() {  # t phase -> one CSV line
  local rss anon cpu
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$SERVER/status")
  anon=$(awk '/^RssAnon:/{print $2}' "/proc/$SERVER/status")
  cpu=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
  echo "$1,$2,$(echo "scale=2; $rss/1024" | bc),$(echo "scale=2; $anon/1024" | bc),$(counts),$(echo "scale=2; $cpu/$TICK" | bc)"
}
CSV="$OUT.csv"
echo "seconds,phase,vmrss_mb,rssanon_mb,encrypts_total,nonces,server_cpu_s" >"$CSV"
sample 0 idle >>"$CSV"
"$BIN" bench --endpoint "http://127.0.0.1:$PORT" --action Encrypt --concurrency "$CONC" \
  --duration "$SECS" --payload 64 >"$TMP/bench.out" 2>"$TMP/bench.err" &
BENCH=$!
T0=$(date +%s.%N)
next=1
while :; do
  now=$(date +%s.%N)
  wait_s=$(echo "$T0 + $next - $now" | bc)
  case "$wait_s" in -*|0) ;; *) sleep "$wait_s" ;; esac
  if kill -0 "$BENCH" 2>/dev/null; then phase=load; else phase=after; fi
  sample "$next" "$phase" >>"$CSV"
  if [ "$phase" = after ] && [ -z "${LOAD_END:-}" ]; then LOAD_END=$next; fi
  if [ -n "${LOAD_END:-}" ] && [ "$next" -ge $((LOAD_END + TAIL)) ]; then break; fi
  next=$((next + 1))
done
wait "$BENCH" || { cat "$TMP/bench.err" >&2; exit 1; }
BENCH=""
cat "$TMP/bench.out"
cp "$TMP/bench.out" "$OUT.bench.txt"
python3 scripts/plot-rss.py "$CSV" "$OUT.svg" \
  "Server RSS, kms bench Encrypt c=$CONC 64 B for ${SECS}s then ${TAIL}s idle ($(date -u +%Y-%m-%d), $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg))"
echo "wrote $CSV $OUT.svg $OUT.bench.txt"

#!/usr/bin/env bash
# A flame graph of the server on the Encrypt path (issue 21): starts the release server BIN
# on a fresh data dir, records it with perf while `kms bench --action Encrypt --concurrency 32
# --duration 10 --payload 64` loads it, and renders an SVG with inferno (installed into
# target/tools on first use; never committed). Without inferno, writes a
# `perf report --stdio --no-children` excerpt instead.
#
#   ./scripts/flamegraph.sh                              # target/release/kms → target/flamegraph/encrypt.svg
#   OUT=docs/flamegraph-encrypt-after.svg ./scripts/flamegraph.sh
#   OUT=docs/flamegraph-encrypt-before.svg ./scripts/flamegraph.sh /tmp/kms-main
#
# BIN is the server; the load comes from BENCH_BIN (default: target/release/kms, else BIN).
# CALL_GRAPH=fp for frame pointers (lighter, but Rust release builds have none by default).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ $# -gt 0 ]; then BIN=$(realpath "$1"); else
  cargo build --release --locked --bins >&2
  BIN="$ROOT/target/release/kms"
fi
BENCH_BIN=${BENCH_BIN:-$ROOT/target/release/kms}
[ -x "$BENCH_BIN" ] || BENCH_BIN=$BIN
OUT=${OUT:-target/flamegraph/encrypt.svg}
PORT=${PORT:-18790}
DUR=${DUR:-10}
FREQ=${FREQ:-999}
CALL_GRAPH=${CALL_GRAPH:-dwarf,16384}
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
TOOLS="$ROOT/target/tools/bin"
if [ ! -x "$TOOLS/inferno-flamegraph" ]; then
  cargo install inferno --locked --root "$ROOT/target/tools" >&2 || true
fi

DIR=$(mktemp -d)
export KMS_ACCESS_KEY_ID=FLAMEAK KMS_ACCESS_KEY_SECRET=flame-secret-0123456789
export ALIBABA_CLOUD_ACCESS_KEY_ID=$KMS_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET=$KMS_ACCESS_KEY_SECRET
"$BIN" server --listen "127.0.0.1:$PORT" --data-dir "$DIR/data" >"$DIR/server.log" 2>&1 &
SERVER=$!
PERF=
cleanup() {
  [ -n "$PERF" ] && kill -INT "$PERF" 2>/dev/null && wait "$PERF" 2>/dev/null
  kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
EP="http://127.0.0.1:$PORT"
# Warm up (key created, caches filled, connections made) before recording.
"$BENCH_BIN" bench --endpoint "$EP" --action Encrypt --concurrency 32 --duration 1 --payload 64 >/dev/null 2>&1

perf record -F "$FREQ" -g --call-graph "$CALL_GRAPH" -p "$SERVER" -o "$DIR/perf.data" 2>"$DIR/perf.log" &
PERF=$!
sleep 0.5
"$BENCH_BIN" bench --endpoint "$EP" --action Encrypt --concurrency 32 --duration "$DUR" --payload 64 \
  --server-pid "$SERVER" 2>/dev/null | tee "$DIR/bench.txt" >&2 || \
  "$BENCH_BIN" bench --endpoint "$EP" --action Encrypt --concurrency 32 --duration "$DUR" --payload 64 >&2
kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
PERF=

if [ -x "$TOOLS/inferno-flamegraph" ]; then
  # The folded stacks are kept (large; under target/) for inferno-diff-folded and grep.
  FOLDED=${FOLDED:-target/flamegraph/$(basename "${OUT%.svg}").folded}
  mkdir -p "$(dirname "$FOLDED")"
  perf script -i "$DIR/perf.data" 2>/dev/null | "$TOOLS/inferno-collapse-perf" --all >"$FOLDED"
  "$TOOLS/inferno-flamegraph" --title "kms server, Encrypt c=32 64 B ($(basename "$BIN"))" \
    <"$FOLDED" >"$OUT"
  # Text summary: the hottest leaf functions, and the share of stacks through a few frames.
  summary() {
    echo "# hottest leaves (self time)"
    awk '{n=$NF; $NF=""; k=split($0,f,";"); leaf=f[k]; sub(/ +$/,"",leaf); s[leaf]+=n; t+=n}
         END {for (l in s) printf "%6.2f%%  %s\n", 100*s[l]/t, l}' "$FOLDED" | sort -rn | sed -n 1,15p
    echo "# share of samples whose stack passes through (inclusive)"
    for f in 'kms-audit' 'SyncSender<T>::try_send' 'futex_wake' 'finish_task_switch' \
             'NonceJournal::append' 'check_and_record_digest' 'audit::seal_into' 'parse_v3' \
             'Params::from_request' 'render::success' 'tcp_sendmsg' 'tcp_recvmsg' 'getrandom' \
             'lock_contended'; do
      awk -v f="$f" '{n=$NF; t+=n; if (index($0, f)) s+=n} END {printf "%6.2f%%  %s\n", 100*s/t, f}' "$FOLDED"
    done
  }
  summary >"${OUT%.svg}.top.txt"
  echo "wrote $OUT (summary in ${OUT%.svg}.top.txt)" >&2
else
  perf report -i "$DIR/perf.data" --stdio --no-children 2>/dev/null | grep -v '^$' | head -150 \
    >"${OUT%.svg}.txt"
  echo "inferno unavailable: wrote ${OUT%.svg}.txt" >&2
fi

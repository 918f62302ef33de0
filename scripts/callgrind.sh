#!/usr/bin/env bash
# Instructions per request on the hot path, counted by callgrind (repeatable whatever else
# the machine runs, unlike wall-clock figures). Runs the in-process harness
# crates/kms/examples/callgrind_hot_path.rs (release build): the API's axum app with its
# SQLite data dir, nonce journal and audit trail answers N pre-signed requests of each
# action; counters are zeroed just before the first and dumped once the audit trail has
# written the last, every thread included.
#
#   ./scripts/callgrind.sh                      # all actions, N=2000
#   N=500 ./scripts/callgrind.sh Encrypt        # one action
#   callgrind_annotate target/callgrind/Encrypt.out.1 | head -60   # where they go
#
# Prints "<action> <instructions per request>"; the dumps and callgrind_annotate summaries
# are left in target/callgrind/.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
if [ $# -gt 0 ]; then actions=("$@"); else
  actions=(Healthz DescribeRegions Encrypt Decrypt GenerateDataKey)
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --release --example callgrind_hot_path >&2
bin=target/release/examples/callgrind_hot_path
out=target/callgrind
mkdir -p "$out"
for a in "${actions[@]}"; do
  rm -f "$out/$a".out*
  valgrind --tool=callgrind --callgrind-out-file="$out/$a.out" \
    --zero-before=kms_callgrind_begin --dump-before=kms_callgrind_end \
    "$bin" "$a" "$N" 2>"$out/$a.log" || { cat "$out/$a.log" >&2; exit 1; }
  # The dump taken on entering kms_callgrind_end: exactly the N requests.
  dump="$out/$a.out.1"
  [ -f "$dump" ] || { echo "no dump for $a (see $out/$a.log)" >&2; exit 1; }
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  callgrind_annotate "$dump" >"$out/$a.annotate.txt" 2>/dev/null || true
  callgrind_annotate --inclusive=yes "$dump" >"$out/$a.inclusive.txt" 2>/dev/null || true
  echo "$a $((total / N))"
done

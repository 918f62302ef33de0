#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a while, starting from the
# committed corpus in fuzz/corpus/<target>/ (new inputs go to a scratch directory, so the
# committed corpus is only read). Exits non-zero on the first crash, with the input saved
# under fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 s, every target)
#
# FUZZ_TARGET_DIR overrides the build directory (default fuzz/target).
#
# cargo fuzz needs nightly-only compiler flags (-Zsanitizer, sanitizer coverage);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them, so no nightly is installed.
# The targets are built without a sanitizer (-s none): the project's code has no `unsafe`,
# and the C inside aws-lc and SQLite is not instrumented by cargo fuzz's ASan anyway;
# coverage guidance, debug assertions (overflow checks) and the targets' own invariants
# still apply, and the build and the runs are about twice as fast.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
shift || true
export RUSTC_BOOTSTRAP=1

# cargo-fuzz lives in the checkout (.cargo-tools/bin, git-ignored), not in ~/.cargo/bin:
# installed there on first use, found there by `cargo fuzz` through PATH.
tools="$(cd .. && pwd)/.cargo-tools"
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked --root "$tools" cargo-fuzz --version 0.13.2
fi
td=()
[ -n "${FUZZ_TARGET_DIR:-}" ] && td=(--target-dir "$FUZZ_TARGET_DIR")
cargo fuzz build -s none "${td[@]}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t"
  dict=()
  [ -f "$t.dict" ] && dict=("-dict=$PWD/$t.dict")
  start=$SECONDS
  if ! cargo fuzz run -s none "${td[@]}" "$t" "$scratch/$t" "$PWD/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log"
    echo "fuzz: $t FAILED (the input is in fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
  echo "fuzz: $t: ${runs:-?} runs in $((SECONDS - start))s, no crash"
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"

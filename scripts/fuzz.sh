#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for a while, starting from the
# committed corpus in fuzz/corpus/<target>/ (new inputs go to a scratch directory, so the
# committed corpus is only read). Exits non-zero on the first crash, with the input saved
# under fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 s, every target)
#
# FUZZ_TARGET_DIR overrides the build directory (default fuzz/target).
#
# No cargo-fuzz: installing it cost every fresh CI clone about two minutes of compiling.
# The targets are plain binaries linking libfuzzer-sys; this script builds them with the
# same compiler flags `cargo fuzz build -s none` (cargo-fuzz 0.13.2, src/project.rs) passes:
# sanitizer-coverage instrumentation (inline 8-bit counters, PC table, compare tracing, stack
# depth), `--cfg fuzzing`, no branch folding, debug assertions (overflow checks), release
# mode with line tables, and `--target <host>` so build scripts are not instrumented. Those
# flags are all stable `-C` options. Unlike cargo-fuzz it leaves codegen-units at the
# default, which builds faster at some cost in executions per second.
# The targets are built without a sanitizer: the project's code has no `unsafe`, and the C
# inside aws-lc and SQLite would not be instrumented by a Rust sanitizer flag anyway;
# coverage guidance, debug assertions and the targets' own invariants still apply.
# `cargo fuzz run -s none <target>` in fuzz/ still works for those who have cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
shift || true

triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${FUZZ_TARGET_DIR:-$PWD/target}"
RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing \
 -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 -Cdebug-assertions" \
  cargo build --locked --release --config 'profile.release.debug="line-tables-only"' \
    --target "$triple" --target-dir "$target_dir" --bins
bin="$target_dir/$triple/release"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t" "artifacts/$t"
  dict=()
  [ -f "$t.dict" ] && dict=("-dict=$PWD/$t.dict")
  start=$SECONDS
  if ! "$bin/$t" -artifact_prefix="$PWD/artifacts/$t/" -max_total_time="$seconds" -timeout=10 \
      -print_final_stats=1 "${dict[@]}" "$scratch/$t" "$PWD/corpus/$t" >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log"
    echo "fuzz: $t FAILED (the input is in fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
  echo "fuzz: $t: ${runs:-?} runs in $((SECONDS - start))s, no crash"
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"

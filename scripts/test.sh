#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests (the store suite on SQLite
# and on a throwaway PostgreSQL started first, scripts/postgres.sh), a short run of every
# fuzz target (scripts/fuzz.sh, which builds the libFuzzer targets with cargo), then the end-to-end
# suites that start the real `kms server` binary and drive it through the real Alibaba
# Cloud SDKs (Python classic + Tea from PyPI, Node from npm) and the openssl command line.
# Installs what it needs on first use: Debian packages (scripts/install-deps.sh), a Python
# venv in .venv and npm packages in tests/node/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

# Wall time of each step and a closing summary: the script runs itself as a child that notes
# when each step starts (in $KMS_TEST_STEPS); this parent then prints every step's time and
# whether the run passed, even when a step fails.
if [ -z "${KMS_TEST_STEPS:-}" ]; then
  KMS_TEST_STEPS="$(mktemp)"
  export KMS_TEST_STEPS
  status=0
  ./scripts/test.sh "$@" || status=$?
  end=$(date +%s)
  hms() { printf '%dm %02ds' $(($1 / 60)) $(($1 % 60)); }
  printf '\n==== summary\n'
  first="" prev="" name="" n=0
  while IFS=$'\t' read -r t s; do
    [ -n "$prev" ] && printf '  %8s  %s\n' "$(hms $((t - prev)))" "$name"
    first=${first:-$t} prev=$t name=$s n=$((n + 1))
  done < "$KMS_TEST_STEPS"
  [ -n "$prev" ] && printf '  %8s  %s\n' "$(hms $((end - prev)))" "$name"
  rm -f "$KMS_TEST_STEPS"
  if [ "$status" -eq 0 ]; then
    echo "test.sh: PASSED: $n steps in $(hms $((end - ${first:-$end})))"
  else
    echo "test.sh: FAILED (exit $status) in step \"$name\" after $(hms $((end - ${first:-$end}))) ($n steps started)"
  fi
  exit "$status"
fi
step() {
  local now
  now=$(date +%s)
  if [ -n "${step_name:-}" ]; then
    printf -- '---- %s: %dm %02ds\n' "$step_name" $(((now - step_start) / 60)) $(((now - step_start) % 60))
  fi
  step_name="$*" step_start=$now
  printf '%s\t%s\n' "$now" "$*" >> "$KMS_TEST_STEPS"
  printf '\n==== %s\n' "$*"
}

step "dependencies"
./scripts/install-deps.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi

step "build"
cargo build --locked --bins
export KMS_BIN="$PWD/target/debug/kms"

step "PostgreSQL (for the Rust store suite and the second end-to-end pass)"
PG_URL="$(./scripts/postgres.sh)"
trap './scripts/postgres.sh stop' EXIT

step "cargo test (the store suite runs on SQLite and on PostgreSQL)"
# benches run once each (criterion test mode)
KMS_TEST_DATABASE_URL="$PG_URL" cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc

step "fuzz: every target for 20 s from the committed corpus"
./scripts/fuzz.sh 20

step "end-to-end: Python SDKs (classic, Tea V3, Tea v2) and openssl, on SQLite"
# Two workers (pytest-xdist, one file per worker at a time, a block of ports per worker:
# tests/e2e/kms_helpers.free_port), except the files that measure time, kill servers under
# load or fill disks: those run alone afterwards, so a loaded machine cannot fail them.
SERIAL_TESTS=(test_console_security.py test_crash_safety.py test_replay_restart.py
  test_connection_limits.py test_hardening.py test_throttling.py test_bench_smoke.py
  test_metrics.py test_root_rotation.py test_hsm.py)
deselect=()
for t in "${SERIAL_TESTS[@]}"; do deselect+=(--ignore "tests/e2e/$t"); done
.venv/bin/python -m pytest tests/e2e -q -n 2 --dist loadfile "${deselect[@]}"
.venv/bin/python -m pytest -q "${SERIAL_TESTS[@]/#/tests/e2e/}"

step "end-to-end again, on PostgreSQL (every server on its own database), plus multi-node tests"
# Only the files whose behaviour depends on the store engine run twice: keys, versions,
# aliases, tags, import, crypto (material from the store), lifecycle and clock-driven work,
# isolation, crash safety, console sessions, nonce claims (test_protocol), the multi-node
# tests, backup/restore (the PostgreSQL export path) and the store gauges of /metrics (pool use).
# Protocol parsing, TLS, HTTP limits, the CLI and the audit trail do not touch the
# engine and run once, above.
PG_TESTS=(test_keys.py test_versions_rotation.py test_aliases.py test_tags.py test_byok.py
  test_crypto.py test_lifecycle.py test_isolation.py test_crash_safety.py test_console.py
  test_console_security.py test_protocol.py test_multinode.py test_asymmetric.py
  test_sm.py test_secrets.py test_ram.py test_sts.py test_backup.py
  test_metrics.py::test_store_gauges_keys_cache_and_pool test_root_rotation.py)
pg_parallel=() pg_serial=()
for t in "${PG_TESTS[@]}"; do
  case " ${SERIAL_TESTS[*]} " in
    *" ${t%%::*} "*) pg_serial+=("tests/e2e/$t") ;;
    *) pg_parallel+=("tests/e2e/$t") ;;
  esac
done
KMS_TEST_DATABASE_URL="$PG_URL" .venv/bin/python -m pytest -q -n 2 --dist loadfile "${pg_parallel[@]}"
KMS_TEST_DATABASE_URL="$PG_URL" .venv/bin/python -m pytest -q "${pg_serial[@]}"

step "end-to-end: Node SDK"
node --test tests/node/

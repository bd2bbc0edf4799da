#!/usr/bin/env bash
# Measures the running gatherer daemon against Debian's prometheus-node-exporter
# on this machine: CPU seconds per cycle/scrape and peak RSS over N rounds, and
# the gatherer's RSS after N and after 10*N cycles (heap growth).
#
#   bench/daemon-vs-node-exporter.sh [N]      (default N=1000)
#
# The gatherer runs `--stdout --interval 10ms --cycles N` with stdout to
# /dev/null; its CPU comes from GNU time. node_exporter is scraped N times with
# curl; its CPU is the utime+stime delta of its own /proc/PID/stat, so curl's
# cost is not counted against it. Installs node_exporter, curl and time if
# missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}

need=()
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts a service on install where systemd runs; we start our own.
  pkill -x prometheus-node-exporter 2>/dev/null || true
fi

# The gatherer as shipped (profile `small`, see Cargo.toml); PROFILE=release to compare.
PROFILE=${PROFILE:-small}
cargo build --profile "$PROFILE" -p gatherer --quiet
TARGET="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')}"
G="$TARGET/$PROFILE/gatherer"
TICK=$(getconf CLK_TCK)

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# --- gatherer: N cycles
out=$(/usr/bin/time -f '%U %S %M' "$G" --stdout --interval 10ms --cycles "$N" --log-level warn 2>&1 >/dev/null | tail -1)
read -r gu gs gmax <<<"$out"
g_cpu_ms=$(python3 -c "print(f'{($gu+$gs)*1000/$N:.3f}')")
rows=$("$G" --once --interval 100ms --log-level warn | wc -l)
samples=$("$G" --once --interval 100ms --log-level warn | python3 -c 'import json,sys; print(sum(len(json.loads(l)["fields"]) for l in sys.stdin))')

# --- gatherer as deployed: streaming to a reporter (--ingest discard) with its
# admin port on, /metrics scraped once a second. Same CPU and peak RSS
# measures as above, so the cost of the stream, the buffer and the admin port
# shows as the difference.
cargo build --release -p reporter --quiet
R="$TARGET/release/reporter"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RP=$(free_port); AP=$(free_port)
"$R" --listen 127.0.0.1:$RP --ingest discard --log-level warn >/dev/null 2>&1 &
rp=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$RP") 2>/dev/null && break; sleep 0.1; done
( for _ in $(seq $((N / 100 + 5))); do sleep 1; curl -sf -o /dev/null "http://127.0.0.1:$AP/metrics" || true; done ) &
scraper=$!
out=$(/usr/bin/time -f '%U %S %M' "$G" --reporter http://127.0.0.1:$RP --admin-listen 127.0.0.1:$AP \
  --interval 10ms --cycles "$N" --log-level warn 2>&1 >/dev/null | tail -1)
read -r su ss smax <<<"$out"
kill $scraper $rp 2>/dev/null || true
s_cpu_ms=$(python3 -c "print(f'{($su+$ss)*1000/$N:.3f}')")

# --- gatherer: heap growth. The hostpulse_self row carries the process's own RSS each
# cycle: compare it after N cycles and after 10*N cycles of one process.
read -r rss_n rss_10n < <("$G" --stdout --interval 1ms --cycles $((10 * N)) --log-level warn \
  | grep -F '"table":"hostpulse_self"' | python3 -c '
import json, sys
n = int(sys.argv[1]); i = 0; first = last = 0
for line in sys.stdin:
    i += 1
    rss = json.loads(line)["fields"]["rss_bytes"] // 1024
    if i == n:
        first = rss
    last = rss
print(first, last)' "$N")

# --- node_exporter: N scrapes
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
prometheus-node-exporter --web.listen-address=127.0.0.1:$PORT --log.level=warn >/dev/null 2>&1 &
np=$!
trap 'kill $np 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/metrics" && break; sleep 0.1; done
ne_samples=$(curl -sf "http://127.0.0.1:$PORT/metrics" | grep -vc '^#')
t0=$(cpu_ticks $np)
for _ in $(seq "$N"); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/metrics"; done
t1=$(cpu_ticks $np)
ne_hwm=$(hwm_kb $np)
ne_cpu_ms=$(python3 -c "print(f'{($t1-$t0)*1000/$TICK/$N:.3f}')")

printf '\nmachine: %s, %s cores, kernel %s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" "$(uname -r)"
printf '| | gatherer | node_exporter 1.5.0 |\n|---|---|---|\n'
printf '| CPU per cycle / scrape | %s ms | %s ms |\n' "$g_cpu_ms" "$ne_cpu_ms"
mb() { python3 -c "print(f'{$1/1024:.1f}')"; }
printf '| peak RSS over %s rounds | %s MB | %s MB |\n' "$N" "$(mb "$gmax")" "$(mb "$ne_hwm")"
printf '| samples per round | %s (%s rows) | %s |\n' "$samples" "$rows" "$ne_samples"
printf '| streaming + admin port: CPU per cycle, peak RSS | %s ms, %s MB | |\n' "$s_cpu_ms" "$(mb "$smax")"
printf '| gatherer RSS after %s / %s cycles | %s MB / %s MB | |\n' "$N" "$((10 * N))" "$(mb "$rss_n")" "$(mb "$rss_10n")"

#!/usr/bin/env bash
# Measures the running gatherer daemon against Debian's prometheus-node-exporter
# on this machine, side by side: CPU seconds per cycle/scrape, their ratio, and
# peak RSS over N rounds; the gatherer's RSS after N and after 10*N cycles
# (heap growth); the shipped binary's size.
#
#   bench/daemon-vs-node-exporter.sh [N] [INTERVAL]     (default N=500, INTERVAL=20ms)
#
# Each phase runs the gatherer for N cycles at INTERVAL while node_exporter is
# scraped N times at the same interval, at the same time, so both see the same
# load from the rest of the machine; the ratio of one phase is the figure to
# trust on a shared machine. The phases:
#
#   serverless  gatherer --stdout (stdout to /dev/null)
#   streaming   gatherer --reporter R --buffer-dir D (the issue's measure)
#   deployed    streaming + --admin-listen, /metrics scraped once a second
#
# The gatherer runs every family (its default), a superset of node_exporter's
# default collectors (cpu, loadavg, meminfo, vmstat, netdev, netstat+sockstat,
# diskstats, filesystem, pressure, stat+filefd, entropy, hwmon, uname/os).
# Neither lists /proc every cycle: node_exporter's processes collector is off
# by default, the gatherer counts processes every --process-count-every (30 s).
# Its CPU comes from GNU time (utime+stime of the whole process, every
# thread); node_exporter's is the utime+stime delta of its own
# /proc/PID/stat over the phase, so curl's cost is not counted against it.
# The reporter runs with --ingest discard. Installs node_exporter, curl and time
# if missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
INTERVAL=${2:-20ms}

need=()
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts a service on install where systemd runs; we start our own.
  pkill -x prometheus-node-exporter 2>/dev/null || true
fi

# The gatherer as shipped (`cargo gatherer-dist`: profile `small`, static,
# see .cargo/config.toml); PROFILE=release (or small) builds that profile the
# ordinary way to compare; GATHERER=PATH measures a binary built elsewhere
# (an older commit's, for a before/after in one session).
PROFILE=${PROFILE:-dist}
TARGET="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')}"
if [ -n "${GATHERER:-}" ]; then
  G=$GATHERER
elif [ "$PROFILE" = dist ]; then
  cargo gatherer-dist --quiet
  G="$TARGET/x86_64-unknown-linux-gnu/small/gatherer"
else
  cargo build --profile "$PROFILE" -p gatherer --quiet
  G="$TARGET/$PROFILE/gatherer"
fi
cargo build --release -p reporter --quiet
R="$TARGET/release/reporter"
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# INTERVAL as seconds for sleep(1): 20ms -> 0.02, 1s -> 1.
PAUSE=$(python3 -c "import sys;s=sys.argv[1];print(float(s[:-2])/1000 if s.endswith('ms') else float(s[:-1]))" "$INTERVAL")

# --- node_exporter, scraped by a background loop during each phase.
NP=$(free_port)
prometheus-node-exporter --web.listen-address=127.0.0.1:$NP --log.level=warn >/dev/null 2>&1 &
np=$!; pids+=("$np")
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$NP/metrics" && break; sleep 0.1; done
ne_samples=$(curl -sf "http://127.0.0.1:$NP/metrics" | grep -vc '^#')
scrape_loop() { for _ in $(seq "$N"); do curl -sf -o /dev/null "http://127.0.0.1:$NP/metrics"; sleep "$PAUSE"; done; }

# --- a reporter for the streaming phases.
RP=$(free_port)
"$R" --listen 127.0.0.1:$RP --ingest discard --log-level warn >/dev/null 2>&1 &
pids+=("$!")
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$RP") 2>/dev/null && break; sleep 0.1; done

# phase NAME ARGS...: runs the gatherer with ARGS for N cycles beside N scrapes;
# sets g_ms (gatherer CPU ms per cycle), g_mb (peak RSS), ne_ms (node_exporter
# CPU ms per scrape), ratio.
phase() {
  local name=$1; shift
  local t0 t1 out gu gs gmax
  t0=$(cpu_ticks "$np")
  scrape_loop & local scraper=$!
  out=$(/usr/bin/time -f '%U %S %M' "$G" "$@" --interval "$INTERVAL" --cycles "$N" --log-level warn 2>&1 >/dev/null | tail -1)
  wait "$scraper"
  t1=$(cpu_ticks "$np")
  read -r gu gs gmax <<<"$out"
  g_ms=$(python3 -c "print(f'{($gu+$gs)*1000/$N:.3f}')")
  g_mb=$(python3 -c "print(f'{$gmax/1024:.1f}')")
  ne_ms=$(python3 -c "print(f'{($t1-$t0)*1000/$TICK/$N:.3f}')")
  ratio=$(python3 -c "g=$gu+$gs; print(f'1/{($t1-$t0)/$TICK/g:.1f}' if g > 0 else 'n/a')")
  printf '| %s | %s ms | %s ms | **%s** | %s MB |\n' "$name" "$g_ms" "$ne_ms" "$ratio" "$g_mb" >>"$WORK/table"
}

phase "serverless \`--stdout\`" --stdout
phase "streaming \`--reporter --buffer-dir\`" --reporter "http://127.0.0.1:$RP" --buffer-dir "$WORK/buffer"
AP=$(free_port)
( for _ in $(seq $((N / 50 + 5))); do sleep 1; curl -sf -o /dev/null "http://127.0.0.1:$AP/metrics" || true; done ) &
admin_scraper=$!; pids+=("$admin_scraper")
phase "streaming + admin port scraped 1/s" --reporter "http://127.0.0.1:$RP" --buffer-dir "$WORK/buffer2" --admin-listen "127.0.0.1:$AP"
kill "$admin_scraper" 2>/dev/null || true
ne_hwm=$(hwm_kb "$np")

rows=$("$G" --once --interval 100ms --log-level warn | wc -l)
samples=$("$G" --once --interval 100ms --log-level warn | python3 -c 'import json,sys; print(sum(len(json.loads(l)["fields"]) for l in sys.stdin))')

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

mb() { python3 -c "print(f'{$1/1024:.1f}')"; }
printf '\nmachine: %s, %s cores, kernel %s; load average before: %s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s cycles and scrapes at %s, side by side; gatherer %s (profile %s), binary %s bytes\n\n' "$N" "$INTERVAL" "$G" "$PROFILE" "$(stat -c %s "$G")"
printf '| gatherer mode | gatherer CPU per cycle | node_exporter 1.5.0 CPU per scrape, same run | ratio | gatherer peak RSS |\n|---|---|---|---|---|\n'
cat "$WORK/table"
printf '\nnode_exporter peak RSS: %s MB; samples per round: gatherer %s (%s rows), node_exporter %s\n' "$(mb "$ne_hwm")" "$samples" "$rows" "$ne_samples"
printf 'gatherer RSS after %s / %s cycles: %s MB / %s MB\n' "$N" "$((10 * N))" "$(mb "$rss_n")" "$(mb "$rss_10n")"

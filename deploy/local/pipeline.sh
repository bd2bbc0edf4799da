#!/usr/bin/env bash
# The whole pipeline on this machine, no external service: a reporter on
# 127.0.0.1:8675 printing rows as JSON lines, and a gatherer streaming this
# host's metrics to it over loopback. Ctrl-C stops both.
#
#   deploy/local/pipeline.sh              (PORT=8675 INTERVAL=2s by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-8675}
INTERVAL=${INTERVAL:-2s}
cargo build --release --quiet -p reporter -p gatherer
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
buffer=$(mktemp -d -t hostpulse-buffer.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$buffer"; }
trap cleanup EXIT INT TERM
"$bin/reporter" --listen "127.0.0.1:$PORT" --spool-dir "$buffer/spool" --jsonl stdout &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"$bin/gatherer" --reporter "http://127.0.0.1:$PORT" --interval "$INTERVAL" --buffer-dir "$buffer" &
pids+=($!)
echo "reporter on 127.0.0.1:$PORT; try: grpcurl -plaintext 127.0.0.1:$PORT hostpulse.v1.Admin/ListNodes" >&2
wait -n

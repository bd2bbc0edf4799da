#!/usr/bin/env bash
# The whole pipeline on this machine, no external service: a reporter on
# 127.0.0.1:8675 that spools every batch, stores the rows in an embedded
# SQLite database and prints them as JSON lines, and a gatherer streaming this
# host's metrics to it over loopback. Ctrl-C stops both; the data stays in
# ./hostpulse-data/ (spool, gatherer buffer, hostpulse.db) for sqlite3. Both
# serve their own metrics: the reporter on PORT+1, the gatherer on PORT+2.
#
#   deploy/local/pipeline.sh              (PORT=8675 INTERVAL=2s DATA=./hostpulse-data)
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-8675}
INTERVAL=${INTERVAL:-2s}
DATA=${DATA:-./hostpulse-data}
cargo build --release --quiet -p reporter -p gatherer
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
mkdir -p "$DATA"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$bin/reporter" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" \
  --spool-dir "$DATA/spool" --sqlite "$DATA/hostpulse.db" --jsonl stdout &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"$bin/gatherer" --reporter "http://127.0.0.1:$PORT" --interval "$INTERVAL" --buffer-dir "$DATA/buffer" \
  --admin-listen "127.0.0.1:$((PORT + 2))" &
pids+=($!)
cat >&2 <<MSG
reporter on 127.0.0.1:$PORT, rows below and in $DATA/hostpulse.db. Try, in another terminal:
  grpcurl -plaintext 127.0.0.1:$PORT hostpulse.v1.Admin/ListNodes
  curl -s 127.0.0.1:$((PORT + 1))/metrics     # the reporter's own metrics; the gatherer's on $((PORT + 2))
  sqlite3 $DATA/hostpulse.db "select datetime(ts/1e9,'unixepoch'), node, usage_percent from cpu where cpu='total' order by ts desc limit 5"
MSG
wait -n

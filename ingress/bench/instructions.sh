#!/usr/bin/env bash
# User-space instructions per durable ack, counted by callgrind: a measure
# of serve's ingress cost that does not move with the host's speed (wall
# time and CPU time on this shared 2-core host drift by up to ±40 % within
# an hour, so A/B throughput needs many interleaved runs; this does not).
#
# usage: ingress/bench/instructions.sh [BIN] [SECONDS]   (needs valgrind, wrk)
#   BIN defaults to target/release/switchyard. For a per-function breakdown
#   build with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only and read the
#   dump it names with `callgrind_annotate --inclusive=yes --tree=calling`.
# Caveats: valgrind's CPU has no SHA extensions, so sha2 runs its software
# path here (~35k instructions per ack that are ~free natively); threads are
# serialized, so commits batch fewer acks than natively; kernel time
# (syscalls, fsync, loopback TCP) is not counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/switchyard}
SECS=${2:-10}
PORT=${PORT:-8097}
work=$(mktemp -d)
trap 'kill -INT "$vg" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
SWITCHYARD_WEBHOOK_TOKEN=t RUST_LOG=warn valgrind --tool=callgrind \
  --callgrind-out-file="$work/cg.%p" "$BIN" serve --ingress-only \
  --listen "127.0.0.1:$PORT" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
vg=$!
for _ in $(seq 120); do
  curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 1
done
script=ingress/bench/unique_richpanel.lua
# Warm up (page cache, statement cache, allocator), then count from zero.
TOKEN=t wrk -t1 -c8 -d3s -s "$script" "http://127.0.0.1:$PORT" >/dev/null
callgrind_control -z "$vg" >/dev/null
TOKEN=t wrk -t1 -c16 -d"${SECS}s" -s "$script" "http://127.0.0.1:$PORT" >"$work/wrk.out"
callgrind_control -d "$vg" >/dev/null
acks=$(awk '/requests in/ {print $1}' "$work/wrk.out")
dump=$(ls "$work"/cg.*.1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "acks=$acks instructions=$total per_ack=$((total / acks))"
if [ -n "${KEEP:-}" ]; then cp "$dump" "$KEEP" && echo "callgrind dump: $KEEP"; fi

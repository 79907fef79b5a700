#!/usr/bin/env bash
# What exporting traces costs the ingress: durable acks/s of
# `serve --ingress-only` under wrk with tracing off, exported at 1 %
# sampling and at 100 %, interleaved (off, 1 %, 100 %, off, ...) so the
# host's drift hits every mode alike. The spans go to `loadtest collector`
# on loopback, which decodes every export.
#
# usage: ingress/bench/tracing_cost.sh [ROUNDS] [SECONDS]   (needs wrk)
#   build first: cargo build --release -p ops -p loadtest
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-10}
BIN=target/release/switchyard
PORT=${PORT:-8096}
OTLP=${OTLP:-127.0.0.1:4319}
work=$(mktemp -d)
target/release/loadtest collector --listen "$OTLP" >"$work/collector.log" 2>&1 &
collector=$!
trap 'kill "$collector" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # run MODE ENV... -> prints acks/s
  local mode=$1
  shift
  rm -rf "$work/data"
  env SWITCHYARD_WEBHOOK_TOKEN=t RUST_LOG=warn "$@" "$BIN" serve --ingress-only \
    --listen "127.0.0.1:$PORT" --data-dir "$work/data" >"$work/serve-$mode.log" 2>&1 &
  local serve=$!
  for _ in $(seq 100); do
    curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
  done
  TOKEN=t wrk -t2 -c64 -d"${SECS}s" -s ingress/bench/unique_richpanel.lua \
    "http://127.0.0.1:$PORT" >"$work/wrk.out"
  kill -TERM "$serve"
  wait "$serve" 2>/dev/null || true
  awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/wrk.out"
}

endpoint="OTEL_EXPORTER_OTLP_ENDPOINT=http://$OTLP"
printf '%-6s %10s %10s %10s\n' round off "1 %" "100 %"
for r in $(seq "$ROUNDS"); do
  off=$(run off OTEL_SDK_DISABLED=true)
  one=$(run ratio "$endpoint" OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01)
  all=$(run full "$endpoint" OTEL_TRACES_SAMPLER=always_on)
  printf '%-6s %10s %10s %10s\n' "$r" "$off" "$one" "$all"
done
sleep 6
tail -1 "$work/collector.log"

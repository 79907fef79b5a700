#!/usr/bin/env bash
# End-to-end throughput with a light load generator: the full `serve`
# (ingress + worker, embedded backend), the fake downstreams as their own
# process, and wrk2 sending unique Richpanel webhooks at a constant RATE.
# The harness (`loadtest run`) needs ~1 core at these rates on a 2-core
# machine; wrk2 needs ~0.1. Prints the queue while sending, the time to
# drain after the last send, log events per second, and checks that every
# acknowledged webhook is in the log exactly once.
#
# Usage: loadtest/bench/e2e_wrk2.sh RATE [SECONDS]
#   WRK2=path/to/wrk2/wrk (default: wrk2 on PATH) — build: docs/performance.md
#   needs: cargo build --release -p ops -p downstream; sqlite3
set -euo pipefail
RATE=${1:?usage: e2e_wrk2.sh RATE [SECONDS]}
SECS=${2:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release
WRK2=${WRK2:-wrk2}
DATA=$(mktemp -d /tmp/switchyard-e2e-XXXXXX)
FAKE_PORT=${FAKE_PORT:-8700}
PORT=${PORT:-8099}
TOKEN=e2e-$RANDOM$RANDOM
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status() { "$BIN/switchyard" status --data-dir "$DATA" 2>/dev/null | grep '^queue' || true; }

"$BIN/fake-downstream" --listen "127.0.0.1:$FAKE_PORT" --no-quota >"$DATA.fake.log" 2>&1 &
fake=$!
pids+=("$fake")
env_for() { # credentials set, client-side quota lifted: measure switchyard
  local ds=$1 base=$2
  echo "SWITCHYARD_${ds}_BASE_URL=$base SWITCHYARD_${ds}_API_KEY=bench" \
    "SWITCHYARD_${ds}_QUOTA_REQUESTS=1000000 SWITCHYARD_${ds}_QUOTA_PERIOD_MS=1000" \
    "SWITCHYARD_${ds}_QUOTA_BURST=1000000"
}
# shellcheck disable=SC2046
env SWITCHYARD_WEBHOOK_TOKEN="$TOKEN" RUST_LOG=warn \
  $(env_for RICHPANEL "http://127.0.0.1:$FAKE_PORT") \
  $(env_for OPENAI "http://127.0.0.1:$FAKE_PORT/v1") \
  $(env_for SHOPIFY "http://127.0.0.1:$FAKE_PORT") \
  "$BIN/switchyard" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA.serve.log" 2>&1 &
serve=$!
pids+=("$serve")
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done

serve0=$(cpu "$serve"); fake0=$(cpu "$fake"); t0=$(date +%s.%N)
TOKEN=$TOKEN "$WRK2" -t1 -c32 -d"${SECS}s" -R"$RATE" -s "$ROOT/ingress/bench/unique_richpanel.lua" \
  --latency "http://127.0.0.1:$PORT" >"$DATA.wrk2.log" 2>&1 &
wrk=$!
while kill -0 "$wrk" 2>/dev/null; do
  sleep 2
  echo "t=$(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5)s $(status)"
done
wait "$wrk"
t1=$(date +%s.%N)
until status | grep -q '0 waiting, 0 in flight'; do sleep 0.2; done
t2=$(date +%s.%N)
serve1=$(cpu "$serve"); fake1=$(cpu "$fake")

sent=$(awk '/requests in/ {print $1}' "$DATA.wrk2.log")
rejected=$(awk -F': ' '/non-2xx/ {print $2}' "$DATA.wrk2.log")
db=$DATA/switchyard.sqlite
events=$(sqlite3 "$db" "SELECT COUNT(*) FROM events")
received=$(sqlite3 "$db" "SELECT COUNT(*) FROM events WHERE kind = 'MessageReceived'")
distinct=$(sqlite3 "$db" "SELECT COUNT(DISTINCT event_id) FROM events WHERE kind = 'MessageReceived'")
dlq=$(sqlite3 "$db" "SELECT COUNT(*) FROM queue_dlq")
# Sending time as wrk2 measured it ("N requests in 20.00s"), plus the drain.
sending=$(awk '/requests in/ {gsub(/[s,]/, "", $4); print $4}' "$DATA.wrk2.log")
elapsed=$(echo "$sending + $t2 - $t1" | bc)
echo "sent $sent webhooks at $RATE/s for ${SECS}s ($rejected not 2xx); the queue drained $(echo "$t2 - $t1" | bc | cut -c1-5) s after the last send"
echo "log: $events events, $received messages ($distinct distinct), DLQ $dlq => $(echo "$events / $elapsed" | bc) log events/s over sending + draining"
echo "CPU: serve $(echo "($serve1 - $serve0) / 100" | bc -l | cut -c1-5) s, fake downstreams $(echo "($fake1 - $fake0) / 100" | bc -l | cut -c1-5) s"
echo "ack latency (wrk2, from the intended send time):" $(grep -E '^ +(50\.000|99\.000|99\.900)%' "$DATA.wrk2.log" | tr -s ' ')
rm -f "$DATA".*.log
# wrk2 counts answers it read; up to one request per connection (32) may
# have been acknowledged after it stopped reading.
acked=$((sent - rejected))
if [ "$received" -lt "$acked" ] || [ "$received" -gt $((acked + 32)) ] || [ "$distinct" != "$received" ] || [ "$dlq" != 0 ]; then
  echo "FAIL: every acknowledged webhook must be in the log exactly once (acked $acked, in log $received, distinct $distinct, DLQ $dlq)" >&2
  exit 1
fi
echo "ok: every acknowledged webhook is in the log exactly once"

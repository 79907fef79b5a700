#!/usr/bin/env bash
# Backlog drain under Richpanel's quota, through the whole pipeline:
# N webhooks queued while no worker runs, then WORKERS `switchyard serve`
# processes drain them against the fake Richpanel enforcing LIMIT requests
# per WINDOW_MS (Richpanel's: 50 per 30 s). Every message needs one
# Richpanel write (its route tags). Prints the fake's count of requests and
# 429s and the drain rate as a share of the quota's rate (LIMIT / WINDOW).
#
#   loadtest/bench/quota_drain.sh aws 3 500          # 3 workers, shared bucket in DynamoDB
#   loadtest/bench/quota_drain.sh embedded 1 500     # one process, local bucket
#   WINDOW_MS=5000 loadtest/bench/quota_drain.sh aws 3 500   # the same 50, every 5 s
#   REQUESTS_OUT=requests.json …                              # keep the fake's request log
#
# The workers keep the production bucket shape (48 per window, burst 2)
# with the window set to WINDOW_MS. AWS: needs scripts/local-aws/start.
# Release binaries: cargo build --release -p ops -p downstream
set -euo pipefail
BACKEND="${1:?embedded|aws}"
WORKERS="${2:-1}"
N="${3:-500}"
LIMIT="${LIMIT:-50}"
WINDOW_MS="${WINDOW_MS:-30000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/target/release"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

case "$BACKEND" in
  aws)
    [[ -f "$ROOT/.local-aws/env" ]] || { echo "run scripts/local-aws/start first" >&2; exit 2; }
    # shellcheck disable=SC1091
    . "$ROOT/.local-aws/env"
    PREFIX="qd$(date +%H%M%S)$RANDOM"
    "$BIN/switchyard" init --backend aws --aws-prefix "$PREFIX" >/dev/null
    BACKEND_ARGS=(--backend aws --aws-prefix "$PREFIX")
    ;;
  embedded)
    [[ "$WORKERS" == 1 ]] || { echo "the embedded backend is one process" >&2; exit 2; }
    BACKEND_ARGS=(--data-dir "$WORK/data")
    ;;
  *) echo "backend: embedded or aws" >&2; exit 2 ;;
esac

FAKE_PORT="$(free_port)"
FAKE="http://127.0.0.1:$FAKE_PORT"
"$BIN/fake-downstream" --listen "127.0.0.1:$FAKE_PORT" --quota-limit "$LIMIT" \
  --quota-window-ms "$WINDOW_MS" >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
until curl -sf "$FAKE/_fake/requests" >/dev/null; do sleep 0.2; done

export SWITCHYARD_WEBHOOK_TOKEN=drain-token RUST_LOG=warn
for ds in RICHPANEL OPENAI SHOPIFY; do
  export "SWITCHYARD_${ds}_BASE_URL=$FAKE" "SWITCHYARD_${ds}_API_KEY=bench-key"
done
export SWITCHYARD_OPENAI_BASE_URL="$FAKE/v1" SWITCHYARD_OPENAI_API_KEY=
export SWITCHYARD_RICHPANEL_QUOTA_PERIOD_MS="$WINDOW_MS" SWITCHYARD_DOWNSTREAM_MAX_WAIT_MS=10000

# 1. The backlog: an ingress alone acknowledges N distinct webhooks.
PORT="$(free_port)"
"$BIN/switchyard" serve "${BACKEND_ARGS[@]}" --ingress-only --listen "127.0.0.1:$PORT" >"$WORK/ingress.log" 2>&1 &
INGRESS=$!
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
seq 1 "$N" | xargs -P 4 -I{} curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/webhooks/richpanel" \
  -H 'Content-Type: application/json' -H "X-Switchyard-Token: $SWITCHYARD_WEBHOOK_TOKEN" \
  -d '{"ticket_id":"QD-{}","ticket_url":"https://app.richpanel.com/x","trigger":"bench","message_id":"m{}","message":"backlog message {}","channel":"email"}'
kill -INT "$INGRESS"; wait "$INGRESS" || true
"$BIN/switchyard" status "${BACKEND_ARGS[@]}" | grep -i queue >&2 || true
curl -sf -X POST "$FAKE/_fake/reset" >/dev/null

# 2. The drain: WORKERS processes at once.
started=$(date +%s.%N)
for i in $(seq 1 "$WORKERS"); do
  "$BIN/switchyard" serve "${BACKEND_ARGS[@]}" --listen "127.0.0.1:$(free_port)" >"$WORK/worker-$i.log" 2>&1 &
  PIDS+=($!)
done
deadline=$(( $(date +%s) + N * WINDOW_MS / LIMIT / 1000 * 2 + 120 ))
while :; do
  done_writes=$(curl -sf "$FAKE/_fake/requests" | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["method"] == "PUT" and r["status"] == 200))')
  [[ "$done_writes" -ge "$N" ]] && break
  if (( $(date +%s) > deadline )); then echo "not drained: $done_writes of $N writes" >&2; break; fi
  sleep 2
done
elapsed=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
# REQUESTS_OUT=file keeps the fake's request log (method, path, status, at_ms).
[[ -n "${REQUESTS_OUT:-}" ]] && curl -sf "$FAKE/_fake/requests" > "$REQUESTS_OUT"
curl -sf "$FAKE/_fake/requests" | python3 -c "
import json, sys
log = [r for r in json.load(sys.stdin) if r['path'].startswith('/v1/tickets') or r['path'].startswith('/v1/order')]
ok = sorted(r['at_ms'] for r in log if r['status'] == 200)
limited = sum(1 for r in log if r['status'] == 429)
span = (ok[-1] - ok[0]) / 1000 if len(ok) > 1 else 0
rate = (len(ok) - 1) / span if span else 0
quota = $LIMIT / ($WINDOW_MS / 1000)
print(f'quota-drain: backend=$BACKEND workers=$WORKERS messages=$N quota=$LIMIT/${WINDOW_MS}ms '
      f'requests={len(log)} answered_200={len(ok)} answered_429={limited} '
      f'first_to_last={span:.1f}s rate={rate:.3f}/s quota_rate={quota:.3f}/s '
      f'share={100 * rate / quota:.1f}% wall=${elapsed}s')
"
grep -h '"level":"WARN"\|"level":"ERROR"' "$WORK"/worker-*.log | cut -c1-300 | sort | uniq -c | sort -rn | head -5 >&2 || true

#!/usr/bin/env bash
# CPU per webhook on the AWS backend, switchyard beside the Python peer
# (Powertools idempotency + SqsFifoPartialProcessor, loadtest/bench/peer or
# BENCH_PEER=path/to/peer_pipeline.py), in one run on the same local
# servers and the same workload: N Richpanel webhooks ("where is my order
# #…", 50 conversations) sent one at a time, then drained. CPU is each
# process's own (utime + stime), per webhook, per stage:
#   ingress — switchyard `serve --ingress-only` (ledger claim, send, mark);
#             the peer's idempotent handler (the same three calls);
#   worker  — switchyard `serve` draining (decode, rules, 5 events in the
#             log, shadowed actions, delete); the peer's FIFO processor
#             (one event + projection per message, batch delete).
# Prints one line per stage with both figures and the ratio.
#
#   scripts/local-aws/start && cargo build --release -p ops
#   loadtest/bench/aws_cpu.sh 500 [ROUNDS]
set -euo pipefail
N="${1:-500}"
ROUNDS="${2:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/target/release/switchyard"
PEER="${BENCH_PEER:-$ROOT/loadtest/bench/peer/peer_pipeline.py}"
[[ -f "$PEER" ]] || { echo "peer not found: $PEER (set BENCH_PEER)" >&2; exit 2; }
[[ -f "$ROOT/.local-aws/env" ]] || { echo "run scripts/local-aws/start first" >&2; exit 2; }
# shellcheck disable=SC1091
. "$ROOT/.local-aws/env"
export AWS_DEFAULT_REGION="$AWS_REGION"
VENV="$ROOT/.tools/peer"
if ! "$VENV/bin/python" -c 'import aws_lambda_powertools, boto3' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "aws-lambda-powertools==3.37.0" boto3
fi
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_ms() { awk '{ printf "%d", ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }
queue_empty() {
  "$BIN" status --backend aws --aws-prefix "$1" --json | python3 -c '
import json, sys; q = json.load(sys.stdin)["queue"]; sys.exit(0 if q["visible"] == 0 and q["in_flight"] == 0 else 1)'
}
export SWITCHYARD_WEBHOOK_TOKEN=cpu-bench RUST_LOG=warn

ours() { # prints "ingress_ms worker_ms" per webhook
  local prefix="cpu$(date +%H%M%S)$RANDOM" port pid c0 c1
  "$BIN" init --backend aws --aws-prefix "$prefix" >/dev/null
  port="$(free_port)"
  "$BIN" serve --backend aws --aws-prefix "$prefix" --ingress-only --listen "127.0.0.1:$port" >"$WORK/ingress.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
  c0="$(cpu_ms "$pid")"
  for i in $(seq 0 $((N - 1))); do
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/webhooks/richpanel" \
      -H 'Content-Type: application/json' -H "X-Switchyard-Token: $SWITCHYARD_WEBHOOK_TOKEN" \
      -d "{\"ticket_id\":\"T$((i % 50))\",\"ticket_url\":\"https://app.richpanel.com/x\",\"message_id\":\"m$i\",\"message\":\"where is my order #$((10000 + i))\",\"channel\":\"livechat\"}"
  done
  c1="$(cpu_ms "$pid")"
  kill -INT "$pid"; wait "$pid" || true
  local ingress=$((c1 - c0))
  # The worker: a full serve (no downstream credentials: actions shadowed),
  # CPU from ready to drained.
  port="$(free_port)"
  "$BIN" serve --backend aws --aws-prefix "$prefix" --listen "127.0.0.1:$port" >"$WORK/worker.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
  c0="$(cpu_ms "$pid")"
  until queue_empty "$prefix"; do sleep 0.5; done
  c1="$(cpu_ms "$pid")"
  kill -INT "$pid"; wait "$pid" || true
  python3 -c "print(f'{$ingress / $N:.3f} {($c1 - $c0) / $N:.3f}')"
}

for r in $(seq 1 "$ROUNDS"); do
  peer="$("$VENV/bin/python" "$PEER" "$N")"
  read -r ours_in ours_wk < <(ours)
  python3 - "$peer" "$ours_in" "$ours_wk" "$r" <<'PY'
import json, sys
peer = json.loads(sys.argv[1]); ours_in, ours_wk, r = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
for stage, p, o in (("ingress", peer["ingress_cpu_ms_per_event"], ours_in),
                    ("worker", peer["worker_cpu_ms_per_event"], ours_wk)):
    print(f"aws-cpu round={r} stage={stage} peer_ms={p:.3f} switchyard_ms={o:.3f} ratio={p / o:.2f}x")
PY
done

-- wrk script: every request is a distinct Richpanel event (unique ticket
-- per thread + counter), so each one is a durable ack (ledger create, queue
-- send, ledger mark), never a duplicate.
-- Usage: TOKEN=... wrk -t2 -c64 -d20s -s ingress/bench/unique_richpanel.lua http://127.0.0.1:8088
local counter = 0
local tid = 0
local token = os.getenv("TOKEN") or ""
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + tid)
  prefix = string.format("B%d-%d-%d", os.time(), tid, math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"ticket_id":"%s-%d","ticket_url":"https://app.richpanel.com/x","trigger":"bench","message_id":"m%d","message":"benchmark message %d","channel":"email"}',
    prefix, counter % 5000, counter, counter)
  return wrk.format("POST", "/webhooks/richpanel",
    { ["Content-Type"] = "application/json", ["X-Switchyard-Token"] = token }, body)
end

function done(summary, latency, requests)
  io.write(string.format("p50=%.2fms p90=%.2fms p99=%.2fms p99.9=%.2fms max=%.2fms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
  io.write(string.format("non-2xx/3xx responses: %d\n", summary.errors.status))
end

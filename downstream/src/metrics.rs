//! Metric names of the downstream crate (Prometheus), and the helpers that
//! record them. The `downstream` label is the downstream's name
//! (`richpanel`, `openai`, `shopify`), `bucket` a token bucket's name.
/// Counter: retries of a failed call. Labels: `downstream`.
pub const RETRIES: &str = "downstream_retries_total";
/// Histogram: seconds a call waited for a token bucket. Labels: `bucket`.
pub const BUCKET_WAIT_SECONDS: &str = "downstream_bucket_wait_seconds";
/// Counter: calls refused because the bucket had no token in time.
/// Labels: `bucket`.
pub const BUCKET_EXHAUSTED: &str = "downstream_bucket_exhausted_total";
/// Counter: pauses of a bucket after a downstream 429. Labels: `bucket`.
pub const BUCKET_PAUSED: &str = "downstream_bucket_paused_total";
/// Counter: takes from the fleet's shared bucket, by `bucket` and `result`
/// (`granted`, `refused`, `unreachable` — then the local share served).
pub const BUCKET_FLEET_TAKES: &str = "downstream_bucket_fleet_takes_total";
/// Gauge: circuit breaker state, 0 closed, 1 half-open, 2 open. Labels:
/// `downstream`.
pub const BREAKER_STATE: &str = "downstream_breaker_state";
/// Counter: circuit breaker state changes. Labels: `downstream`, `from`,
/// `to` (`closed`, `half_open`, `open`).
pub const BREAKER_TRANSITIONS: &str = "downstream_breaker_transitions_total";
/// Counter: calls suppressed by the kill switch. Labels: `downstream`,
/// `reason`.
pub const SUPPRESSED: &str = "downstream_suppressed_total";
/// Counter: writes recorded instead of sent (shadow mode, or no
/// credentials). Labels: `downstream`.
pub const SHADOWED: &str = "downstream_shadowed_total";
/// Counter: calls that ran out of time. Labels: `downstream`.
pub const TIMEOUTS: &str = "downstream_timeouts_total";
/// Histogram: seconds from sending a request to its response's status.
/// Labels: `downstream`.
pub const CALL_SECONDS: &str = "downstream_call_seconds";
/// Counter: responses by HTTP status. Labels: `downstream`, `status`.
pub const RESPONSES: &str = "downstream_responses_total";
/// Gauge: the kill switch as the safety layers last read it (floors and
/// fail-closed included): 0 off, 1 `auto_replies`, 2 `all_writes`. No
/// labels.
pub const KILL_SWITCH: &str = "downstream_kill_switch";
/// Counter: flag store reads that failed (the cache then falls back). No
/// labels.
pub const FLAG_READ_FAILURES: &str = "downstream_flag_read_failures_total";

/// A retry of a call to `downstream`.
pub(crate) fn retry(downstream: &'static str) {
    metrics::counter!(RETRIES, "downstream" => downstream).increment(1);
}

/// A token taken from `bucket` after waiting `secs`.
pub(crate) fn bucket_wait(bucket: &'static str, secs: f64) {
    metrics::histogram!(BUCKET_WAIT_SECONDS, "bucket" => bucket).record(secs);
    // On the call's span (Clients::call) when there is one.
    tracing::Span::current().record("switchyard.bucket_wait_ms", (secs * 1000.0) as u64);
}

/// A call refused by `bucket`: no token in time.
pub(crate) fn bucket_exhausted(bucket: &'static str) {
    metrics::counter!(BUCKET_EXHAUSTED, "bucket" => bucket).increment(1);
}

/// `bucket` paused by a 429.
pub(crate) fn bucket_fleet_take(bucket: &'static str, result: &'static str) {
    metrics::counter!(BUCKET_FLEET_TAKES, "bucket" => bucket, "result" => result).increment(1);
}

pub(crate) fn bucket_paused(bucket: &'static str) {
    metrics::counter!(BUCKET_PAUSED, "bucket" => bucket).increment(1);
}

/// The breaker of `downstream` is now in `state` (its gauge value).
pub(crate) fn breaker_state(downstream: &'static str, state: f64) {
    metrics::gauge!(BREAKER_STATE, "downstream" => downstream).set(state);
}

/// The breaker of `downstream` went from `from` to `to`.
pub(crate) fn breaker_transition(downstream: &'static str, from: &'static str, to: &'static str) {
    metrics::counter!(BREAKER_TRANSITIONS,
        "downstream" => downstream, "from" => from, "to" => to)
    .increment(1);
}

/// A call to `downstream` suppressed for `reason`.
pub(crate) fn suppressed(downstream: &'static str, reason: &'static str) {
    metrics::counter!(SUPPRESSED, "downstream" => downstream, "reason" => reason).increment(1);
}

/// A write to `downstream` recorded, not sent.
pub(crate) fn shadowed(downstream: &'static str) {
    metrics::counter!(SHADOWED, "downstream" => downstream).increment(1);
}

/// A call to `downstream` that timed out.
pub(crate) fn timeout(downstream: &'static str) {
    metrics::counter!(TIMEOUTS, "downstream" => downstream).increment(1);
}

/// A response of `downstream` with `status`, `secs` after the request.
pub(crate) fn response(downstream: &'static str, status: u16, secs: f64) {
    metrics::histogram!(CALL_SECONDS, "downstream" => downstream).record(secs);
    metrics::counter!(RESPONSES, "downstream" => downstream, "status" => status.to_string())
        .increment(1);
}

/// A failed flag store read.
pub(crate) fn flag_read_failure() {
    metrics::counter!(FLAG_READ_FAILURES).increment(1);
}

/// The kill switch the layers now apply.
pub(crate) fn kill_switch(k: ports::KillSwitch) {
    let v = match k {
        ports::KillSwitch::Off => 0.0,
        ports::KillSwitch::AutoReplies => 1.0,
        ports::KillSwitch::AllWrites => 2.0,
    };
    metrics::gauge!(KILL_SWITCH).set(v);
}

//! Metrics: names in one place, and the process-wide Prometheus recorder.
//!
//! `install()` is idempotent (a `OnceLock`): several routers in one process
//! (tests, `serve` running ingress and worker) share one recorder. If some
//! other recorder was installed first, the handle still renders (empty).
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: events accepted and queued (202). Labels: `route`.
pub const ACCEPTED: &str = "switchyard_ingress_accepted_total";
/// Counter: events already accepted with the same payload (200
/// duplicate). Labels: `route`.
pub const DUPLICATE: &str = "switchyard_ingress_duplicate_total";
/// Counter: event ids already accepted with a different payload (409).
/// Labels: `route`.
pub const CONFLICT: &str = "switchyard_ingress_conflict_total";
/// Counter: requests refused with a 4xx other than 409 (conflicts and
/// 503s have counters of their own). Labels: `route`, `status`, `reason`
/// (the `error` word of the answer).
pub const REJECTED: &str = "switchyard_ingress_rejected_total";
/// Counter: 503s because a port failed before the ack, or a concurrent
/// identical request did not finish in time. Labels: `route`, `reason`
/// (the port, or `in_flight`).
pub const UNAVAILABLE: &str = "switchyard_ingress_unavailable_total";
/// Histogram: seconds from a request's arrival to its ack (accepted or
/// duplicate). Labels: `route`.
pub const ACK_SECONDS: &str = "switchyard_ingress_ack_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first call.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(ACK_SECONDS.to_owned()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                // The Lambda entry points install the EMF recorder first.
                tracing::debug!("another metrics recorder is installed; /metrics renders nothing");
            }
            handle
        })
        .clone()
}

/// One more of the outcome counter `name` ([`ACCEPTED`], [`DUPLICATE`],
/// [`CONFLICT`]) on `route`.
pub(crate) fn outcome(name: &'static str, route: &'static str) {
    metrics::counter!(name, "route" => route).increment(1);
}

/// A request on `route` refused with `status` for `reason`.
pub(crate) fn rejected(route: &'static str, status: u16, reason: &'static str) {
    metrics::counter!(REJECTED, "route" => route, "status" => status.to_string(), "reason" => reason)
        .increment(1);
}

/// A request on `route` acked `secs` after it arrived.
pub(crate) fn ack_latency(route: &'static str, secs: f64) {
    metrics::histogram!(ACK_SECONDS, "route" => route).record(secs);
}

/// A 503 on `route` for `reason`.
pub(crate) fn unavailable(route: &'static str, reason: &'static str) {
    metrics::counter!(UNAVAILABLE, "route" => route, "reason" => reason).increment(1);
}

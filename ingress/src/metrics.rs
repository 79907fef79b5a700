//! Metrics: names in one place, and the process-wide Prometheus recorder.
//!
//! `install()` is idempotent (a `OnceLock`): several routers in one process
//! (tests, `serve` running ingress and worker) share one recorder. If some
//! other recorder was installed first, the handle still renders (empty).
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const ACCEPTED: &str = "switchyard_ingress_accepted_total";
pub const DUPLICATE: &str = "switchyard_ingress_duplicate_total";
pub const CONFLICT: &str = "switchyard_ingress_conflict_total";
pub const REJECTED: &str = "switchyard_ingress_rejected_total";
pub const UNAVAILABLE: &str = "switchyard_ingress_unavailable_total";
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
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics renders ours only"
                );
            }
            handle
        })
        .clone()
}

pub(crate) fn outcome(name: &'static str, route: &'static str) {
    metrics::counter!(name, "route" => route).increment(1);
}

pub(crate) fn rejected(route: &'static str, status: u16, reason: &'static str) {
    metrics::counter!(REJECTED, "route" => route, "status" => status.to_string(), "reason" => reason)
        .increment(1);
}

pub(crate) fn ack_latency(route: &'static str, secs: f64) {
    metrics::histogram!(ACK_SECONDS, "route" => route).record(secs);
}

//! Logs and metrics of the Lambda entry points (`ingress-lambda`,
//! `worker-lambda`); `switchyard serve` keeps its own subscriber and the
//! Prometheus recorder.
//!
//! - Logs: `lambda_runtime`'s default subscriber, rebuilt here with one
//!   more directive. `AWS_LAMBDA_LOG_FORMAT=JSON` gives JSON lines (else
//!   text); the level is `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else
//!   `INFO`, and `RUST_LOG` directives apply. The runtime's TRACE line
//!   that dumps each raw event (customer text) is always filtered out.
//! - Metrics: the `metrics` facade recorded into CloudWatch Embedded
//!   Metric Format (namespace [`EMF_NAMESPACE`]); [`flush_metrics`] writes
//!   one JSON document per label set to stdout. Call it at the end of each
//!   invocation (Lambda freezes the process between invocations, so a
//!   timer would not run); [`flush_metrics_on_sigterm`] flushes on
//!   shutdown.
use std::io::Write;
use std::str::FromStr;
use std::sync::OnceLock;

use metrics_cloudwatch_embedded::Collector;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The CloudWatch namespace of every metric the Lambdas emit.
pub const EMF_NAMESPACE: &str = "Switchyard";
/// The dimension every metric carries on the AWS backend: the deployment's
/// `SWITCHYARD_AWS_PREFIX`, so two stacks in one account have apart
/// metrics (and alarms).
pub const PREFIX_DIMENSION: &str = "Prefix";
/// The EMF property (not a dimension) carrying the invocation's request id.
pub const REQUEST_ID_PROPERTY: &str = "RequestId";
/// Where `lambda_runtime` logs each raw event at TRACE.
const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// Install the log subscriber described in the module docs and, when the
/// `OTEL_*` environment asks for it, the span exporter of
/// [`crate::otel`] with `service` as `service.name`. Does nothing if the
/// process already has a subscriber. Keep what it returns while the
/// function runs; flush spans per invocation with [`crate::otel::flush`].
pub fn init_lambda_logs(service: &str) -> Option<crate::otel::Tracing> {
    use tracing_subscriber::prelude::*;
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| LevelFilter::from_str(&l).ok())
        .unwrap_or(LevelFilter::INFO);
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    if let Ok(d) = format!("{RAW_EVENT_TARGET}=debug").parse() {
        filter = filter.add_directive(d);
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let log = if format.eq_ignore_ascii_case("json") {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    crate::otel::install(log, service)
}

/// Install the EMF recorder as the process's `metrics` recorder (once; a
/// later call is a no-op). Returns false if another recorder was there.
/// On the AWS backend every metric has the dimension [`PREFIX_DIMENSION`].
pub fn init_lambda_metrics(backend: &crate::BackendConfig) -> bool {
    COLLECTOR
        .get_or_init(|| {
            let mut builder =
                metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(EMF_NAMESPACE);
            if let crate::BackendConfig::Aws(s) = backend {
                builder = builder.with_dimension(PREFIX_DIMENSION, s.prefix.clone());
            }
            match builder.init() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "EMF metrics recorder not installed");
                    None
                }
            }
        })
        .is_some()
}

/// Write what was recorded since the last flush to stdout as EMF, with
/// `request_id` as a property of each document. Never fails the caller.
pub fn flush_metrics(request_id: Option<&str>) {
    let Some(Some(c)) = COLLECTOR.get() else {
        return;
    };
    match request_id {
        Some(id) => c.set_property(REQUEST_ID_PROPERTY, id.to_owned()),
        None => c.remove_property(REQUEST_ID_PROPERTY),
    };
    // One write per flush: the documents do not interleave with log lines.
    let mut buf = Vec::new();
    let written = c
        .flush(&mut buf)
        .and_then(|()| std::io::stdout().lock().write_all(&buf));
    if let Err(e) = written {
        tracing::warn!(error = %e, "EMF metrics flush failed");
    }
}

/// On SIGTERM, flush the metrics and exit 0. Lambda sends SIGTERM before
/// it shuts an environment down only when an extension is registered; we
/// do not register one (see docs/aws.md), so this is for functions that
/// have one. Call from inside the Tokio runtime.
pub fn flush_metrics_on_sigterm() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::spawn(async move {
                    if term.recv().await.is_some() {
                        tracing::info!("SIGTERM: flushing metrics, exiting");
                        flush_metrics(None);
                        std::process::exit(0);
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "no SIGTERM handler"),
        }
    }
}

/// A Lambda's stdout read back (tests, tooling): every line as JSON (log
/// lines and EMF documents). An error names the first line that is not
/// JSON, or the first of `forbidden` (customer data) found anywhere.
pub fn read_output(
    out: &str,
    forbidden: &[&str],
) -> std::result::Result<Vec<serde_json::Value>, String> {
    if let Some(f) = forbidden.iter().find(|f| out.contains(**f)) {
        return Err(format!("{f:?} in the output"));
    }
    out.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: not JSON: {l}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::read_output;

    #[test]
    fn read_output_parses_json_lines_and_names_what_is_wrong() {
        let out = "{\"level\":\"INFO\"}\n{\"_aws\":{},\"n\":1}\n";
        let lines = read_output(out, &["ana@example.com"]).expect("two JSON lines");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["n"], 1);
        let err = read_output("{}\nplain text\n", &[]).expect_err("not JSON");
        assert!(err.contains("plain text"), "{err}");
        let err = read_output("{\"to\":\"ana@example.com\"}\n", &["ana@example.com"])
            .expect_err("forbidden");
        assert!(err.contains("ana@example.com"), "{err}");
    }
}

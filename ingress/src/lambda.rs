//! The Lambda entry point's plumbing: backend from the environment, logs
//! and EMF metrics ([`ports::telemetry`]), then `lambda_http::run` over the same router `serve` uses.
//!
//! Environment: `SWITCHYARD_BACKEND` = `aws` (default) with
//! `SWITCHYARD_AWS_PREFIX` (default `switchyard`), or `embedded` with
//! `SWITCHYARD_DATA_DIR` (tests, single-host experiments); plus everything
//! [`IngressConfig::from_env`] reads and the standard `AWS_*` variables.
use ports::{AwsSettings, Backend, BackendConfig, EmbeddedSettings};

use crate::{Ingress, IngressConfig, IngressError};

/// Which backend the environment asks for.
pub fn backend_config_from_env() -> Result<BackendConfig, IngressError> {
    let kind = std::env::var("SWITCHYARD_BACKEND").unwrap_or_else(|_| "aws".to_owned());
    match kind.trim() {
        "aws" => Ok(BackendConfig::Aws(AwsSettings::new(
            std::env::var("SWITCHYARD_AWS_PREFIX").unwrap_or_else(|_| "switchyard".to_owned()),
        ))),
        "embedded" => Ok(BackendConfig::Embedded(EmbeddedSettings::new(
            std::env::var("SWITCHYARD_DATA_DIR").unwrap_or_else(|_| "switchyard-data".to_owned()),
        ))),
        other => Err(IngressError::Config(format!(
            "SWITCHYARD_BACKEND must be aws or embedded, not {other:?}"
        ))),
    }
}

/// Write the metrics this invocation recorded (EMF on stdout) and export
/// its spans once its response is ready: Lambda freezes the process right
/// after.
async fn flush_metrics_after(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use lambda_http::RequestExt;
    let request_id = req.lambda_context_ref().map(|c| c.request_id.clone());
    let response = next.run(req).await;
    ports::telemetry::flush_metrics(request_id.as_deref());
    if ports::otel::enabled() {
        let _ = tokio::task::spawn_blocking(ports::otel::flush).await;
    }
    response
}

/// Build everything from the environment and serve Lambda invocations
/// until the runtime stops. Logs and metrics per [`ports::telemetry`];
/// the EMF recorder is installed before the router, so the router's
/// Prometheus handle stays empty here.
pub async fn run() -> Result<(), lambda_http::Error> {
    let _traces = ports::telemetry::init_lambda_logs("switchyard-ingress");
    let config = backend_config_from_env()?;
    ports::telemetry::init_lambda_metrics(&config);
    ports::telemetry::flush_metrics_on_sigterm();
    let backend = Backend::open(&config).await?;
    let ingress = Ingress::new(backend, IngressConfig::from_env()?).await?;
    let app = ingress
        .router()
        .layer(axum::middleware::from_fn(flush_metrics_after));
    lambda_http::run(app).await
}

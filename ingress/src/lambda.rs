//! The Lambda entry point's plumbing: backend from the environment, JSON
//! logs, then `lambda_http::run` over the same router `serve` uses.
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

/// JSON logs to stdout (CloudWatch), filtered by `RUST_LOG` (default info).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignore "already set": a host process may have installed its own.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .try_init();
}

/// Build everything from the environment and serve Lambda invocations
/// until the runtime stops.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_json_logs();
    let backend = Backend::open(&backend_config_from_env()?).await?;
    let ingress = Ingress::new(backend, IngressConfig::from_env()?).await?;
    lambda_http::run(ingress.router()).await
}

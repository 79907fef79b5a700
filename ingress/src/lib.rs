//! The ack-fast webhook endpoint, the first step of the flow
//! (`docs/architecture.md`, "Flow"): authenticate → bound the body →
//! normalize → idempotency ledger → FIFO queue → answer.
//!
//! One app, two entry points: [`Ingress::router`] is served over HTTP by
//! `switchyard serve` (with `--ingress-only`, the ingress alone) and by the Lambda binary
//! (`src/bin/ingress-lambda.rs`, `lambda_http::run`). No logic lives in
//! either `main`.
//!
//! # Layout
//! - `config.rs` — [`IngressConfig`] (serde, defaults, env overrides).
//! - `error.rs` — [`IngressError`] and the `{error, reason}` rejection.
//! - `auth.rs` — token (constant time, rotation) and optional HMAC.
//! - `limits.rs` — content type (415) and body size (413).
//! - `aws_names.rs` — SNS topic ARNs and host names, and their regions.
//! - `sns/` — SNS message canonicalization and signature verification.
//! - `normalize.rs` — the only caller of the envelope crate.
//! - `flow.rs` — ledger → queue → ledger: the idempotency flow.
//! - `routes.rs` — handlers, responses, the per-request span.
//! - `metrics.rs` — metric names and the Prometheus recorder.
//! - `trace.rs` — W3C `traceparent` for the queue message.
//! - `lambda.rs` — building the backend from the Lambda environment.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod aws_names;
mod config;
mod error;
mod flow;
pub mod lambda;
mod limits;
pub mod metrics;
mod normalize;
mod routes;
pub mod sns;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use ports::Backend;

pub use auth::{
    ENV_TOKEN, HEADER_SIGNATURE, HEADER_TIMESTAMP, SECRET_HMAC_KEY, SECRET_TOKEN,
    SECRET_TOKEN_PREVIOUS, generate_token, sign,
};
pub use config::{
    ANY_TOPIC, BodyLimits, DEFAULT_SNS_CERT_HOST_PATTERN, DEFAULT_TOKEN_HEADER, IngressConfig,
    SnsConfig,
};
pub use error::IngressError;

/// State shared by every handler.
#[derive(Debug)]
struct Shared {
    backend: Backend,
    cfg: IngressConfig,
    auth: auth::Auth,
    sns: sns::Verifier,
    flow: flow::FlowSettings,
    metrics: PrometheusHandle,
}

/// A configured ingress. Cheap to clone; build routers from it.
#[derive(Debug, Clone)]
pub struct Ingress {
    shared: Arc<Shared>,
}

impl Ingress {
    /// Check the configuration and that a token exists (secret
    /// `webhook-token` or `SWITCHYARD_WEBHOOK_TOKEN`); install the metrics
    /// recorder (once per process).
    pub async fn new(backend: Backend, cfg: IngressConfig) -> Result<Ingress, IngressError> {
        Self::with_env_token(backend, cfg, std::env::var(ENV_TOKEN).ok()).await
    }

    /// As [`Ingress::new`] with the environment token given explicitly
    /// (tests, embedding).
    pub async fn with_env_token(
        backend: Backend,
        cfg: IngressConfig,
        env_token: Option<String>,
    ) -> Result<Ingress, IngressError> {
        cfg.validate()?;
        let auth = auth::Auth::new(
            backend.secrets.clone(),
            env_token,
            &cfg.token_header,
            Duration::from_secs(cfg.hmac_window_secs),
        )?;
        if !auth.has_token().await? {
            return Err(IngressError::NoToken);
        }
        let flow = flow::FlowSettings {
            in_progress: cfg.in_progress(),
            keep: cfg.keep(),
            in_flight_wait: Duration::from_millis(cfg.in_flight_wait_ms),
        };
        if cfg.sns.any_topic() {
            tracing::warn!(
                "SWITCHYARD_SNS_TOPIC_ARNS=*: the SES route accepts messages from any SNS topic, \
                 of any AWS account that subscribes this endpoint"
            );
        }
        let shared = Shared {
            sns: sns::Verifier::new(&cfg.sns)?,
            backend,
            cfg,
            auth,
            flow,
            metrics: metrics::install(),
        };
        Ok(Ingress {
            shared: Arc::new(shared),
        })
    }

    /// Every route: the three webhooks, `/healthz`, `/readyz`, `/metrics`
    /// (one listener: the Lambda entry point, tests, a loopback `serve`).
    pub fn router(&self) -> Router {
        self.webhook_router().merge(self.admin_routes())
    }

    /// The public routes: the three webhooks and `/healthz`.
    pub fn webhook_router(&self) -> Router {
        Router::new()
            .route(routes::RICHPANEL.path, post(routes::richpanel))
            .route(routes::EMAIL.path, post(routes::email))
            .route(routes::SES.path, post(routes::ses))
            .route("/healthz", get(routes::healthz))
            // Limits are per route, enforced by the handlers (JSON 413).
            .layer(DefaultBodyLimit::disable())
            .with_state(self.shared.clone())
    }

    /// The operator's routes for a listener of their own: `/metrics`,
    /// `/readyz` and `/healthz`.
    pub fn admin_router(&self) -> Router {
        self.admin_routes()
            .route("/healthz", get(routes::healthz))
            .with_state(self.shared.clone())
    }

    fn admin_routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/readyz", get(routes::readyz))
            .route("/metrics", get(routes::metrics))
            .with_state(self.shared.clone())
    }
}

/// Make sure a webhook token exists. When none is configured (no secret
/// `webhook-token`, no `SWITCHYARD_WEBHOOK_TOKEN`), generate a strong one,
/// store it as the `webhook-token` secret and return it so `serve` can
/// print it once. `None` when a token already exists.
pub async fn ensure_token(backend: &Backend) -> Result<Option<String>, IngressError> {
    if std::env::var(ENV_TOKEN).is_ok_and(|t| !t.is_empty()) {
        return Ok(None);
    }
    if backend
        .secrets
        .refresh(SECRET_TOKEN)
        .await?
        .is_some_and(|t| !t.is_empty())
    {
        return Ok(None);
    }
    let token = generate_token();
    backend.secrets.store(SECRET_TOKEN, &token).await?;
    Ok(Some(token))
}

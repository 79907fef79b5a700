//! The crate's error ([`IngressError`], for building an ingress) and the
//! HTTP rejection every handler answers with ([`Reject`]).
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

/// Why an ingress could not be built or a token could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// A backend port failed (reading or storing a secret). Caller: if
    /// `is_transient()`, retry start-up later; otherwise fix the backend.
    #[error(transparent)]
    Port(#[from] ports::PortError),
    /// The configuration cannot work (bad header name, regex, number).
    /// Caller: report it to the operator and exit.
    #[error("invalid ingress configuration: {0}")]
    Config(String),
    /// No webhook token is configured in the secrets store or the
    /// environment. Caller: run `ensure_token` first (what `serve` does) or
    /// set `SWITCHYARD_WEBHOOK_TOKEN`.
    #[error("no webhook token configured (secret `webhook-token` or SWITCHYARD_WEBHOOK_TOKEN)")]
    NoToken,
    /// The HTTP client used for SNS certificates could not be built.
    /// Caller: report and exit (a TLS setup problem on this machine).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

impl IngressError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, IngressError::Port(e) if e.is_transient())
    }
}

/// A non-2xx answer: status, a stable machine-readable `error`, a
/// human-readable `reason` naming what is wrong (never echoing secrets or
/// customer data), and for 503 a `Retry-After`.
#[derive(Debug, Clone)]
pub struct Reject {
    pub status: StatusCode,
    pub error: &'static str,
    pub reason: String,
    pub retry_after: Option<Duration>,
    pub event_id: Option<String>,
}

impl Reject {
    pub fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> Self {
        Reject {
            status,
            error,
            reason: reason.into(),
            retry_after: None,
            event_id: None,
        }
    }
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", reason)
    }
    pub fn bad_request(error: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, reason)
    }
    /// 503 with `Retry-After`.
    pub fn unavailable(reason: impl Into<String>, retry_after: Duration) -> Self {
        Reject {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
        }
    }
    pub fn with_event_id(mut self, id: &str) -> Self {
        self.event_id = Some(id.to_owned());
        self
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error, "reason": self.reason });
        if let Some(id) = &self.event_id {
            body["event_id"] = json!(id);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

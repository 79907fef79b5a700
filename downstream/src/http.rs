//! The innermost service: sends a [`StackRequest`] with `reqwest` and maps
//! the answer. 2xx → [`Reply::Sent`]; 429 → `RateLimited` with the parsed
//! `Retry-After`; other statuses → `Http`; timeouts and connection failures
//! → `Timeout` / `Transport`.
use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;
use tracing::Instrument;

use crate::layers::ResponseFuture;
use crate::{CallError, HttpReply, Method, Reply, StackRequest};

/// The innermost service: sends a [`StackRequest`] with `reqwest`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client with pooled connections. `reqwest` only fails to build when
    /// the TLS backend cannot initialise; then a default client is used.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpClient { client }
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl Service<StackRequest> for HttpClient {
    type Response = Reply;
    type Error = CallError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: StackRequest) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move { send(&client, req).await })
    }
}

async fn send(client: &reqwest::Client, req: StackRequest) -> Result<Reply, CallError> {
    let (method, name) = match req.method {
        Method::Get => (reqwest::Method::GET, "GET"),
        Method::Post => (reqwest::Method::POST, "POST"),
        Method::Put => (reqwest::Method::PUT, "PUT"),
    };
    let mut builder = client.request(method, &req.url);
    if let Some(auth) = &req.auth {
        builder = builder.header(auth.header, &auth.value);
    }
    if let Some(ctx) = req.ctx.as_ref().filter(|c| !c.idempotency_key.is_empty()) {
        builder = builder.header("Idempotency-Key", &ctx.idempotency_key);
    }
    if let Some(body) = &req.body {
        builder = builder.json(body.as_ref());
    }
    let mut request = builder.build().map_err(map_err)?;
    // The client span of this request; its context goes out as the W3C
    // `traceparent` header. No URL: paths carry ticket and order ids.
    let span = tracing::info_span!(
        "http",
        otel.name = name,
        otel.kind = "client",
        http.request.method = name,
        server.address = request.url().host_str().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
    );
    ports::otel::inject(&span, |k, v| {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&v) {
            request.headers_mut().insert(k, v);
        }
    });
    let started = std::time::Instant::now();
    let resp = client
        .execute(request)
        .instrument(span.clone())
        .await
        .map_err(map_err)?;
    let status = resp.status().as_u16();
    span.record("http.response.status_code", status);
    crate::metrics::response(
        req.downstream.as_str(),
        status,
        started.elapsed().as_secs_f64(),
    );
    if !(200..300).contains(&status) {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        return Err(CallError::from_status(status, retry_after));
    }
    let body = resp.bytes().await.map_err(map_err)?;
    Ok(Reply::Sent(HttpReply { status, body }))
}

fn map_err(e: reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout
    } else if e.is_decode() {
        CallError::Decode(e.without_url().to_string())
    } else {
        // Without the URL: it may carry ids we do not want in logs.
        CallError::Transport(e.without_url().to_string())
    }
}

/// `Retry-After` as delta-seconds (integer or decimal). HTTP-dates are
/// rare on these APIs and fall back to the default pause.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("NaN"), None);
    }
}

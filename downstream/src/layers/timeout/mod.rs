//! Per-call timeout: one attempt may take at most the configured duration
//! (it sits under the retry layer, so each attempt gets the full budget, and
//! under the bucket, so waiting for a token does not count).
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

use super::{ResponseFuture, call_inner};
use crate::{CallError, DownRequest, Reply};

/// The attempt did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request timed out after {0:?}")]
pub struct Elapsed(pub Duration);

impl From<Elapsed> for CallError {
    fn from(_: Elapsed) -> Self {
        CallError::Timeout
    }
}

#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<DownRequest> for TimeoutService<S>
where
    S: Service<DownRequest, Response = Reply, Error = CallError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Reply;
    type Error = CallError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: DownRequest) -> Self::Future {
        let (inner, timeout) = (self.inner.clone(), self.timeout);
        Box::pin(async move {
            let ds = req.downstream.as_str();
            match tokio::time::timeout(timeout, call_inner(inner, req)).await {
                Ok(r) => r,
                Err(_) => {
                    metrics::counter!("downstream_timeouts_total", "downstream" => ds).increment(1);
                    Err(Elapsed(timeout).into())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;
    use crate::layers::testing::{mock, ok, read};

    #[tokio::test(start_paused = true)]
    async fn slow_answer_times_out_fast_answer_passes() {
        let (inner, mut handle) = mock();
        let svc = TimeoutLayer::new(Duration::from_secs(2)).layer(inner);
        let call = tokio::spawn(svc.clone().oneshot(read()));
        let (_, send) = handle.next_request().await.expect("req");
        tokio::time::sleep(Duration::from_millis(1999)).await;
        send.send_response(ok());
        assert!(call.await.expect("join").is_ok());

        let started = tokio::time::Instant::now();
        let call = tokio::spawn(svc.oneshot(read()));
        let (_, _send) = handle.next_request().await.expect("req");
        let err = call.await.expect("join").expect_err("times out");
        assert_eq!(err, CallError::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}

//! Per-call timeout: one attempt may take at most the configured duration
//! (it sits under the retry layer, so each attempt gets the full budget, and
//! under the bucket, so waiting for a token does not count).
use std::time::Duration;

use tower::Service;

use super::{Around, AroundLayer, call_inner};
use crate::{CallError, Reply, StackRequest};

/// The attempt did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request timed out after {0:?}")]
pub struct Elapsed(pub Duration);

impl From<Elapsed> for CallError {
    fn from(_: Elapsed) -> Self {
        CallError::Timeout
    }
}

/// Bounds one call.
#[derive(Debug, Clone)]
pub struct TimeoutGate {
    timeout: Duration,
}

/// The per-call timeout as a tower layer.
pub type TimeoutLayer = AroundLayer<TimeoutGate>;

impl TimeoutLayer {
    /// The layer bounding each call to `timeout`.
    pub fn new(timeout: Duration) -> Self {
        AroundLayer(TimeoutGate { timeout })
    }
}

impl Around for TimeoutGate {
    fn around<S>(
        self,
        inner: S,
        req: StackRequest,
    ) -> impl std::future::Future<Output = Result<Reply, CallError>> + Send + 'static
    where
        S: Service<StackRequest, Response = Reply, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let timeout = self.timeout;
        async move {
            let ds = req.downstream.as_str();
            match tokio::time::timeout(timeout, call_inner(inner, req)).await {
                Ok(r) => r,
                Err(_) => {
                    crate::metrics::timeout(ds);
                    Err(Elapsed(timeout).into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;
    use crate::layers::testing::{mock, ok, read};
    use tower::Layer;

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

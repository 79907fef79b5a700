//! Retry with exponential backoff and full jitter (`backon`), only for
//! retryable failures: 429, 408, 5xx, timeouts and connection errors —
//! never 400/401/403/404/422 or a suppression. Bounded attempts plus a
//! retry budget (tower's `TpsBudget`: retries may add at most a share of
//! recent traffic, so a failing downstream is not hammered by retries).
//!
//! `Retry-After` is honoured: the next attempt is never earlier than the
//! downstream said. A `Retry-After` longer than the in-memory wait bound is
//! not slept on: the call fails with `RateLimited { retry_after }` and the
//! worker retries the message later through queue visibility.
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rand::Rng;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service};

use super::{ResponseFuture, call_inner};
use crate::config::RetryConfig;
use crate::{CallError, Reply, StackRequest};

/// Why the retry layer stopped retrying (the last error is returned as is;
/// this names the reason for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GaveUp {
    #[error("not retryable")]
    /// The error is not one a retry can fix.
    NotRetryable,
    #[error("retry budget exhausted")]
    /// Retries are over their share of recent requests.
    BudgetExhausted,
    #[error("retry-after exceeds the in-memory wait bound")]
    /// The server asked for a longer wait than a call may spend in memory.
    RetryAfterTooLong,
}

/// Whether `e` may be retried in memory, given the wait bound.
///
/// A customer-facing write (a reply) is not idempotent downstream: it is
/// retried only after a failure that proves nothing was delivered (429,
/// or our own rate limiter). A timeout, 5xx or dropped connection may have
/// delivered it, and a reply must never go out twice — the worker records
/// the outcome as unknown and hands the conversation to a human.
pub fn classify(e: &CallError, max_wait: Duration, customer_facing: bool) -> Result<(), GaveUp> {
    match e {
        CallError::RateLimited {
            retry_after: Some(d),
        } if *d > max_wait => Err(GaveUp::RetryAfterTooLong),
        CallError::RateLimited { .. } | CallError::Http { status: 429, .. } => Ok(()),
        _ if customer_facing => Err(GaveUp::NotRetryable),
        e if e.is_retryable() => Ok(()),
        _ => Err(GaveUp::NotRetryable),
    }
}

/// Retries with exponential backoff and jitter, within a budget shared by
/// every clone.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    cfg: RetryConfig,
    max_wait: Duration,
    budget: Arc<TpsBudget>,
}

impl RetryLayer {
    /// Retry as `cfg` says; never wait longer than `max_wait` in memory.
    pub fn new(cfg: RetryConfig, max_wait: Duration) -> Self {
        let budget = Arc::new(TpsBudget::new(
            Duration::from_secs(10),
            cfg.budget_min_per_sec,
            cfg.budget_percent,
        ));
        RetryLayer {
            cfg,
            max_wait,
            budget,
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The retry layer around a service.
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    layer: RetryLayer,
}

impl<S> Service<StackRequest> for RetryService<S>
where
    S: Service<StackRequest, Response = Reply, Error = CallError> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    type Response = Reply;
    type Error = CallError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: StackRequest) -> Self::Future {
        let inner = self.inner.clone();
        let RetryLayer {
            cfg,
            max_wait,
            budget,
        } = self.layer.clone();
        budget.deposit();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(cfg.base_delay_ms))
            .with_max_delay(Duration::from_millis(cfg.max_delay_ms))
            .with_max_times(cfg.max_retries);
        let ds = req.downstream.as_str();
        let customer_facing = req.customer_facing();
        Box::pin(async move {
            let attempt = move || call_inner(inner.clone(), req.clone());
            attempt
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .when(move |e| {
                    let verdict = classify(e, max_wait, customer_facing).and_then(|()| {
                        if budget.withdraw() { Ok(()) } else { Err(GaveUp::BudgetExhausted) }
                    });
                    if let Err(why) = verdict
                        && why != GaveUp::NotRetryable
                    {
                        tracing::debug!(downstream = ds, reason = %why, "not retrying");
                    }
                    verdict.is_ok()
                })
                .adjust(|e, delay| delay.map(|d| next_delay(d, e)))
                .notify({
                    let mut retries = 0u32;
                    move |e, d| {
                    retries += 1;
                    // On the call's span (Clients::call) when there is one.
                    tracing::Span::current().record("switchyard.retries", retries);
                    crate::metrics::retry(ds);
                    tracing::debug!(downstream = ds, error = %e, delay_ms = d.as_millis() as u64, "retrying");
                }})
                .await
        })
    }
}

/// Full jitter (uniform in `[0, d]`), but never before `Retry-After`.
fn next_delay(d: Duration, e: &CallError) -> Duration {
    let jittered = Duration::from_nanos(
        rand::rng().random_range(0..=d.as_nanos().min(u64::MAX as u128) as u64),
    );
    match e {
        CallError::RateLimited {
            retry_after: Some(ra),
        } => jittered.max(*ra),
        _ => jittered,
    }
}

#[cfg(test)]
mod tests;

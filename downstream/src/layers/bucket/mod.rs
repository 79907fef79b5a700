//! Token bucket per downstream quota (`governor`, GCRA). Buckets:
//! `richpanel_read` and `richpanel_write` share one limiter because Richpanel
//! counts every call of a key against one quota (50 per 30 s); `openai` and
//! `shopify` have their own. Defaults come from the documented quotas (see
//! `DownstreamConfig::default`).
//!
//! Waiting for a token is bounded by `max_wait`; past it the call fails with
//! [`Exhausted`] (→ `CallError::RateLimited`) so the worker retries the
//! message later through queue visibility instead of holding it in memory.
//! A 429 from the downstream pauses the limiter for its `Retry-After`: no
//! call of that quota leaves before then.
//!
//! With a fleet (the AWS backend: several processes on one queue), a quota
//! is the fleet's, not the process's: tokens come from the shared bucket
//! ([`ports::Fleet::take`]), as many at once as callers here are waiting
//! (up to the burst), spent at once or dropped after one token interval;
//! a 429 pauses the shared bucket too. While the shared bucket cannot be
//! reached, the process falls back to its local share: the quota divided
//! by `fleet_size`.
mod clock;
mod fleet;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;
use tower::Service;

use super::{Around, AroundLayer, call_inner};
use crate::config::QuotaConfig;
use crate::{CallError, Reply, StackRequest};
pub use clock::TokioClock;
use fleet::FleetBucket;

/// Pause applied on a 429 that carries no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// No token within the wait bound. `retry_after` is the wait that would have
/// been needed (always longer than the bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no token within the wait bound (needed {retry_after:?})")]
pub struct Exhausted {
    /// The wait that would have been needed.
    pub retry_after: Duration,
}

impl From<Exhausted> for CallError {
    fn from(e: Exhausted) -> Self {
        CallError::RateLimited {
            retry_after: Some(e.retry_after),
        }
    }
}

type Governor = RateLimiter<
    NotKeyed,
    InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<clock::TokioInstant>,
>;

/// One quota, shared by every clone of the stacks that draw on it.
#[derive(Debug)]
pub struct Limiter {
    name: &'static str,
    /// The whole quota; with a fleet, this process's fallback share.
    governor: Governor,
    fleet: Option<FleetBucket>,
    paused_until: Mutex<Option<Instant>>,
    max_wait: Duration,
}

/// Time per token of `q` (zero fields read as 1).
fn interval(q: &QuotaConfig) -> Duration {
    (Duration::from_millis(q.period_ms.max(1)) / q.requests.max(1)).max(Duration::from_nanos(1))
}

fn governor(q: &QuotaConfig) -> Governor {
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    let quota =
        Quota::with_period(interval(q)).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    RateLimiter::direct_with_clock(quota.allow_burst(burst), TokioClock)
}

impl Limiter {
    /// A limiter for `q`, this process's alone. Zero fields (rejected by
    /// config validation) are read as 1 so this never fails.
    pub fn new(name: &'static str, q: &QuotaConfig, max_wait: Duration) -> Self {
        Limiter {
            name,
            governor: governor(q),
            fleet: None,
            paused_until: Mutex::new(None),
            max_wait,
        }
    }

    /// A limiter for `q` shared by the fleet through `fleet`; while that
    /// cannot be reached, this process keeps to `q / fleet_size`.
    pub fn shared(
        name: &'static str,
        q: &QuotaConfig,
        max_wait: Duration,
        fleet: Arc<dyn ports::Fleet>,
        fleet_size: u32,
    ) -> Self {
        let share = QuotaConfig {
            requests: (q.requests / fleet_size.max(1)).max(1),
            period_ms: q.period_ms,
            burst: 1,
        };
        let rate = ports::Rate {
            interval: interval(q),
            burst: q.burst.max(1),
        };
        Limiter {
            name,
            governor: governor(&share),
            fleet: Some(FleetBucket::new(name, fleet, rate)),
            paused_until: Mutex::new(None),
            max_wait,
        }
    }

    /// Wait for a token, at most `max_wait` in total.
    pub async fn acquire(&self) -> Result<(), Exhausted> {
        let start = Instant::now();
        let deadline = start + self.max_wait;
        let _waiting = self.fleet.as_ref().map(FleetBucket::waiting);
        loop {
            let now = Instant::now();
            let paused = self.paused_until().filter(|p| *p > now);
            let next = match (paused, &self.fleet) {
                (Some(p), _) => Err(p),
                (None, Some(fleet)) => match fleet.take().await {
                    Some(next) => next,
                    None => self.local(now),
                },
                (None, None) => self.local(now),
            };
            let ready_at = match next {
                Ok(()) => {
                    let waited = start.elapsed();
                    crate::metrics::bucket_wait(self.name, waited.as_secs_f64());
                    return Ok(());
                }
                Err(at) => at,
            };
            if ready_at > deadline {
                crate::metrics::bucket_exhausted(self.name);
                return Err(Exhausted {
                    retry_after: ready_at.duration_since(start),
                });
            }
            tokio::time::sleep_until(ready_at).await;
        }
    }

    /// A token of the local bucket, or when there will be one.
    fn local(&self, now: Instant) -> Result<(), Instant> {
        self.governor
            .check()
            .map_err(|not_until| now + not_until.wait_time_from(TokioClock.now()))
    }

    /// Stop handing out tokens until `now + d` (a downstream 429), in the
    /// whole fleet when there is one.
    pub fn pause_for(&self, d: Duration) {
        if let Some(fleet) = &self.fleet {
            fleet.pause(d);
        }
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|old| old < until) {
            *p = Some(until);
        }
        crate::metrics::bucket_paused(self.name);
        tracing::info!(
            bucket = self.name,
            pause_ms = d.as_millis() as u64,
            "quota paused by 429"
        );
    }

    fn paused_until(&self) -> Option<Instant> {
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Waits (bounded) for a token; a 429 pauses the bucket.
#[derive(Debug, Clone)]
pub struct BucketGate {
    limiter: Arc<Limiter>,
}

/// The token bucket as a tower layer.
pub type BucketLayer = AroundLayer<BucketGate>;

impl BucketLayer {
    /// The layer taking tokens from `limiter`.
    pub fn new(limiter: Arc<Limiter>) -> Self {
        AroundLayer(BucketGate { limiter })
    }
}

impl Around for BucketGate {
    fn around<S>(
        self,
        inner: S,
        req: StackRequest,
    ) -> impl std::future::Future<Output = Result<Reply, CallError>> + Send + 'static
    where
        S: Service<StackRequest, Response = Reply, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        async move {
            self.limiter.acquire().await?;
            let result = call_inner(inner, req).await;
            if let Err(CallError::RateLimited { retry_after }) = &result {
                self.limiter.pause_for(retry_after.unwrap_or(DEFAULT_PAUSE));
            }
            result
        }
    }
}

#[cfg(test)]
mod tests;

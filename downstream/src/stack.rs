//! The one place the safety layers are composed.
//!
//! ```text
//! kill switch → shadow → retry → breaker → bucket → gate (kill switch + shadow) → timeout → HTTP
//! ```
//!
//! Why this order:
//! - **Kill switch first**: a forbidden call fails fast, before it costs a
//!   retry, a breaker slot or a token, and the worker records the decision as
//!   `ActionSuppressed`.
//! - **Shadow next**: a shadowed write is fully built and returned; it must
//!   not consume retries, tokens or breaker statistics.
//! - **Retry above the breaker**: every attempt is seen (and counted) by the
//!   breaker, and once it opens the next attempt fails fast with
//!   `CircuitOpen`, which is not retryable — retries stop at once.
//! - **Breaker above the bucket**: while open, calls fail without taking a
//!   token from a quota that healthy calls need.
//! - **Bucket above the timeout**: waiting for a token (bounded by
//!   `max_wait`) does not eat into the per-call timeout, and a 429 seen below
//!   pauses the bucket for everyone.
//! - **Gate again under the waits**: a call may sit in backoff or in the
//!   bucket for seconds. The kill switch and shadow mode are checked again
//!   just before sending (cheap: cached flags), so a flip stops calls that
//!   were already in flight — this is what bounds kill-switch propagation by
//!   the flag cache TTL instead of the longest wait.
//! - **Timeout innermost**: it bounds one attempt, not the whole sequence.
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::config::EndpointConfig;
use crate::flags::FlagCache;
use crate::http::HttpClient;
use crate::layers::breaker::{Breaker, BreakerLayer};
use crate::layers::bucket::{BucketLayer, Limiter};
use crate::layers::kill_switch::KillSwitchLayer;
use crate::layers::retry::RetryLayer;
use crate::layers::shadow::ShadowLayer;
use crate::layers::timeout::TimeoutLayer;
use crate::{CallError, Reply, StackRequest};

/// A composed, type-erased downstream stack. Cheap to clone.
pub type Stack = BoxCloneSyncService<StackRequest, Reply, CallError>;

/// Shared state one downstream's stack draws on.
#[derive(Debug, Clone)]
pub struct StackParts {
    /// The flags every gate reads.
    pub flags: Arc<FlagCache>,
    /// The downstream's circuit breaker.
    pub breaker: Arc<Breaker>,
    /// Its token bucket.
    pub limiter: Arc<Limiter>,
    /// Longest a call may wait in memory (for a token, or a retry's
    /// `Retry-After`).
    pub max_wait: Duration,
}

/// Build the stack for one downstream over `client`.
pub fn build(cfg: &EndpointConfig, parts: StackParts, client: HttpClient) -> Stack {
    let svc = ServiceBuilder::new()
        .layer(KillSwitchLayer::new(parts.flags.clone()))
        .layer(ShadowLayer::new(parts.flags.clone()))
        .layer(RetryLayer::new(cfg.retry.clone(), parts.max_wait))
        .layer(BreakerLayer::new(parts.breaker))
        .layer(BucketLayer::new(parts.limiter))
        .layer(KillSwitchLayer::new(parts.flags.clone()))
        .layer(ShadowLayer::new(parts.flags))
        .layer(TimeoutLayer::new(Duration::from_millis(cfg.timeout_ms)))
        .service(client);
    BoxCloneSyncService::new(svc)
}

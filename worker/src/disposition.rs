//! What becomes of a queue message once the worker is done with it.
use std::time::Duration;

/// What to do with the queue message afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Fully processed: delete it.
    Done,
    /// Try again later (through visibility), e.g. a downstream is rate
    /// limited or a store is unreachable. `None` = the backoff schedule.
    Retry {
        /// At the earliest, when known.
        after: Option<Duration>,
        /// Why (logged redacted; the reason a dead letter would carry).
        reason: String,
        /// A downstream it needs is paused (`pause.<downstream>`): a process
        /// that can wait holds the message in flight until the pause ends,
        /// its group held and nothing suppressed (`hold.rs`); a Lambda
        /// invocation or a worker shutting down retries it as usual.
        paused: Option<String>,
    },
    /// Can never succeed: dead-letter it now with this reason.
    Poison(String),
}

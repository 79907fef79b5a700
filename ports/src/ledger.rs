//! The idempotency ledger: the ingress's conditional write that makes
//! "acknowledged" mean "enqueued exactly once".
//!
//! Record life: `try_create` → `InProgress` (owned by a random `owner`
//! token, claimable by others once `in_progress_until` passes) →
//! `mark_enqueued` → `Enqueued` until `expires_at`. On a failed enqueue the
//! owner calls `release`, deleting the record so a retry starts afresh.
//! A record past `expires_at` counts as absent (checked in code: DynamoDB TTL
//! deletes up to 48 h late).
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{PortError, Result};

/// Longest ledger key, in bytes: DynamoDB's partition key limit (the key is
/// the event id). Both adapters refuse longer keys as
/// [`PortError::Invalid`], so a key gets the same answer on either.
pub const MAX_KEY_BYTES: usize = 2048;

/// `Invalid` unless `key` is 1..=[`MAX_KEY_BYTES`] bytes (the message never
/// quotes the key: event ids may carry customer data).
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(PortError::Invalid("ledger key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(PortError::Invalid(format!(
            "ledger key of {} bytes is over the {MAX_KEY_BYTES}-byte key limit",
            key.len()
        )));
    }
    Ok(())
}

/// Where an event id is in the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    /// Claimed by an attempt that is enqueueing it.
    InProgress,
    /// On the queue: later deliveries are duplicates.
    Enqueued,
}

impl LedgerState {
    /// Its stored name (`in_progress`, `enqueued`).
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::InProgress => "in_progress",
            LedgerState::Enqueued => "enqueued",
        }
    }
    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in_progress" => Some(LedgerState::InProgress),
            "enqueued" => Some(LedgerState::Enqueued),
            _ => None,
        }
    }
}

/// One event id's record in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// The event id.
    pub key: String,
    /// Claimed or enqueued.
    pub state: LedgerState,
    /// sha256 of the normalized payload: same key + other hash = conflict.
    pub payload_hash: String,
    /// Random token of the writer that holds the in-progress claim.
    pub owner: String,
    /// When the record was created (or taken over).
    pub created_at: DateTime<Utc>,
    /// When an `InProgress` claim may be taken over.
    pub in_progress_until: DateTime<Utc>,
    /// When the record stops counting (the key is free again).
    pub expires_at: DateTime<Utc>,
}

/// What `try_create` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// No live record existed; the caller now owns a fresh `InProgress` one.
    Created(LedgerRecord),
    /// An `InProgress` record whose claim had expired was taken over; the
    /// caller now owns it (the argument is the new record).
    TakenOver(LedgerRecord),
    /// A live record exists (returned from the same round trip); the caller
    /// owns nothing. `Enqueued` = duplicate; `InProgress` = someone else is
    /// enqueueing it right now.
    Exists(LedgerRecord),
}

/// The ingress idempotency ledger: one record per accepted event id, with
/// claims that expire.
#[async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// Conditionally create `key` as `InProgress` owned by `owner`.
    /// `Invalid` for a key outside 1..=[`MAX_KEY_BYTES`] bytes.
    async fn try_create(
        &self,
        key: &str,
        payload_hash: &str,
        owner: &str,
        in_progress_for: Duration,
        keep_for: Duration,
    ) -> Result<CreateOutcome>;
    /// `InProgress` → `Enqueued`, only if `owner` still holds the claim
    /// (else `ConditionFailed`).
    async fn mark_enqueued(&self, key: &str, owner: &str) -> Result<()>;
    /// Delete the record if `owner` holds an `InProgress` claim (no-op
    /// otherwise): a failed enqueue must not block retries.
    async fn release(&self, key: &str, owner: &str) -> Result<()>;
    /// The live record of `key`; `None` if absent or expired.
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>>;
}

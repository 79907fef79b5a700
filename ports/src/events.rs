//! The event log: one stream per conversation, appended with optimistic
//! concurrency, atomically with a global event-id uniqueness guard and the
//! stream's projection. Events and projections are opaque JSON here; their
//! meaning lives in the `projections` crate.
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{PortError, Result};

/// An event to append. `event_id` is unique across all streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's id, unique across all streams.
    pub event_id: String,
    /// Event type name, e.g. `MessageReceived`.
    pub kind: String,
    /// The event as JSON.
    pub body: String,
}

/// Most events in one append (DynamoDB's transaction limit shapes it: a
/// guard and an item per event, plus the projection).
pub const MAX_EVENTS: usize = 25;

/// Longest stream name and event id, in bytes: the AWS log keys them as
/// `s#<stream>` and `e#<event id>` under DynamoDB's 2048-byte partition key.
pub const MAX_LOG_KEY_BYTES: usize = crate::ledger::MAX_KEY_BYTES - 2;

/// The checks every backend makes before an append touches storage: a
/// stream name, 1..=[`MAX_EVENTS`] events, non-empty event ids, none twice,
/// names and ids within [`MAX_LOG_KEY_BYTES`].
pub(crate) fn check_append(stream: &str, events: &[NewEvent]) -> Result<()> {
    if stream.is_empty() {
        return Err(PortError::Invalid("stream name is empty".into()));
    }
    if stream.len() > MAX_LOG_KEY_BYTES {
        return Err(PortError::Invalid(format!(
            "stream name of {} bytes is over the {MAX_LOG_KEY_BYTES}-byte limit",
            stream.len()
        )));
    }
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(PortError::Invalid(format!(
            "an append carries 1..={MAX_EVENTS} events, got {}",
            events.len()
        )));
    }
    for (i, e) in events.iter().enumerate() {
        if e.event_id.is_empty() {
            return Err(PortError::Invalid("event id is empty".into()));
        }
        if e.event_id.len() > MAX_LOG_KEY_BYTES {
            return Err(PortError::Invalid(format!(
                "event id of {} bytes is over the {MAX_LOG_KEY_BYTES}-byte limit",
                e.event_id.len()
            )));
        }
        if events[..i].iter().any(|o| o.event_id == e.event_id) {
            return Err(PortError::Invalid(format!(
                "event id {} appears twice in one append",
                e.event_id
            )));
        }
    }
    Ok(())
}

/// An event as stored in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The stream (conversation) it belongs to.
    pub stream: String,
    /// 1-based position in the stream.
    pub seq: u64,
    /// The event's id, unique across all streams.
    pub event_id: String,
    /// Event type name, e.g. `MessageReceived`.
    pub kind: String,
    /// The event as JSON.
    pub body: String,
    /// When it was appended.
    pub recorded_at: DateTime<Utc>,
}

/// A stream's projection: its state folded from its events, stored with
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProjection {
    /// The stream it folds.
    pub stream: String,
    /// Equals the seq of the last event folded in.
    pub version: u64,
    /// The state as JSON.
    pub state: String,
}

/// The event log: per-conversation streams with optimistic concurrency and
/// a projection stored atomically with every append.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// Append `events` (1..=25) at `expected_version + 1 ..` and store
    /// `projection` at the new version, all or nothing. Errors:
    /// `SequenceConflict` if the stream is not at `expected_version`;
    /// `AlreadyAppended` if any event id exists already. Returns the new
    /// version.
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
        projection: String,
    ) -> Result<u64>;
    /// Events with `seq > after`, in order.
    async fn read_stream(&self, stream: &str, after: u64) -> Result<Vec<StoredEvent>>;
    /// The stream's projection; `None` for a stream never appended to.
    async fn projection(&self, stream: &str) -> Result<Option<StoredProjection>>;
    /// Overwrite a projection at its current version (replay repair, and
    /// tests that corrupt one on purpose). `ConditionFailed` if the stored
    /// version differs from `version`.
    async fn put_projection(&self, stream: &str, version: u64, state: String) -> Result<()>;
    /// Stream names in ascending order, after `after`, at most `limit`.
    async fn list_streams(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// Whether an event id was ever appended.
    async fn contains_event(&self, event_id: &str) -> Result<bool>;
}

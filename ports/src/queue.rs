//! The queue port: SQS FIFO semantics.
//!
//! - Strict order within a message group; while a message of a group is in
//!   flight (received, not deleted, visibility not expired) no later message
//!   of that group is delivered; other groups flow.
//! - Deduplication: a send with a dedup id seen within the dedup window
//!   (5 minutes) is accepted and dropped.
//! - A message received more than `max_receive_count` times is moved to the
//!   DLQ instead of being delivered again. The worker may also dead-letter a
//!   message directly with a reason.
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{PortError, Result};

/// Message attribute carrying the reason a message was dead-lettered.
pub const ATTR_DLQ_REASON: &str = "dlq_reason";

/// Largest message, in bytes: SQS's limit, counting the body and each
/// attribute's name, data type (`String`) and value. Both adapters refuse
/// larger ones as [`PortError::Invalid`].
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// `Invalid` when `msg` is over [`MAX_MESSAGE_BYTES`] as SQS counts it.
pub(crate) fn check_size(msg: &OutgoingMessage) -> Result<()> {
    let attributes: usize = msg
        .attributes
        .iter()
        .map(|(k, v)| k.len() + "String".len() + v.len())
        .sum();
    let size = msg.body.len() + attributes;
    if size > MAX_MESSAGE_BYTES {
        return Err(PortError::Invalid(format!(
            "message of {size} bytes (body and attributes) is over the {MAX_MESSAGE_BYTES}-byte limit"
        )));
    }
    Ok(())
}

/// A message to enqueue. Ids must already satisfy SQS limits (at most 128
/// characters of `[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]`); the
/// envelope crate derives such ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// FIFO group: messages of one group are delivered in order, one at a
    /// time.
    pub group_id: String,
    /// A second send with this id within the dedup window enqueues nothing.
    pub dedup_id: String,
    /// The payload (an encoded envelope).
    pub body: String,
    /// String attributes (e.g. `traceparent`).
    pub attributes: BTreeMap<String, String>,
}

/// A received message. `receipt` is valid for this receive only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The queue's id of the message.
    pub message_id: String,
    /// Names this delivery to `delete`, `change_visibility`, `dead_letter`.
    pub receipt: String,
    /// Its FIFO group.
    pub group_id: String,
    /// Its (logical) dedup id, kept across a redrive.
    pub dedup_id: String,
    /// The payload.
    pub body: String,
    /// Its string attributes.
    pub attributes: BTreeMap<String, String>,
    /// 1 on first delivery, +1 on each redelivery.
    pub receive_count: u32,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
}

/// A message in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Stable id for `dlq show` / `dlq redrive` (the original message id).
    pub id: String,
    /// Its FIFO group.
    pub group_id: String,
    /// Its original dedup id.
    pub dedup_id: String,
    /// The payload.
    pub body: String,
    /// Its string attributes (without the DLQ's own).
    pub attributes: BTreeMap<String, String>,
    /// Why it was dead-lettered (attribute `dlq_reason`, or
    /// "exceeded max receive count" when the queue moved it).
    pub reason: String,
    /// Deliveries before it was dead-lettered.
    pub receive_count: u32,
    /// When it was first sent.
    pub sent_at: DateTime<Utc>,
}

/// Which dead letters to put back on the main queue.
#[derive(Debug, Clone)]
pub enum Redrive {
    /// The dead letter with this [`DeadLetter::id`].
    One(String),
    /// Every dead letter the filter matches (all of them for the default).
    Matching(DlqFilter),
}

/// Which dead letters a listing or a redrive takes: each field that is set
/// must match; the default matches every dead letter.
#[derive(Debug, Clone, Default)]
pub struct DlqFilter {
    /// First sent (acknowledged by the ingress) at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// First sent before this instant.
    pub until: Option<DateTime<Utc>>,
    /// The reason it was dead-lettered matches this expression (anywhere
    /// in the reason, as `grep -E`).
    pub reason: Option<regex::Regex>,
    /// The ingress route it came in by (attribute `source`: `richpanel`,
    /// `email`, `ses`).
    pub source: Option<String>,
    /// Its FIFO group (the conversation).
    pub group: Option<String>,
}

/// Message attribute naming the ingress route a message came in by.
pub const ATTR_SOURCE: &str = "source";

impl DlqFilter {
    /// Whether `letter` is one this filter takes.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.since.is_none_or(|t| letter.sent_at >= t)
            && self.until.is_none_or(|t| letter.sent_at < t)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| r.is_match(&letter.reason))
            && self.source.as_ref().is_none_or(|s| {
                letter.attributes.get(ATTR_SOURCE).map(String::as_str) == Some(s.as_str())
            })
            && self.group.as_ref().is_none_or(|g| *g == letter.group_id)
    }

    /// Whether it matches every dead letter.
    pub fn is_everything(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.reason.is_none()
            && self.source.is_none()
            && self.group.is_none()
    }
}

/// Approximate counts for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages waiting to be received.
    pub visible: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dlq: u64,
    /// Age of the oldest message still on the main queue, if known.
    pub oldest_age: Option<Duration>,
}

/// The FIFO queue port.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Durably enqueue; returns the message id. A duplicate dedup id within
    /// the window returns Ok and enqueues nothing. `Invalid` for a message
    /// over [`MAX_MESSAGE_BYTES`] or ids outside SQS's limits.
    async fn send(&self, msg: OutgoingMessage) -> Result<String>;
    /// Most messages one [`Queue::receive`] may return: SQS's 10 unless a
    /// backend can hand out more per call.
    fn max_receive(&self) -> u32 {
        10
    }
    /// Whether a long-poll receive runs on a server, where it goes on after
    /// its caller died (SQS) and may still hand messages to the dead
    /// caller; `false` when a receive ends with its process (embedded).
    fn receives_outlive_their_caller(&self) -> bool {
        false
    }
    /// Deliveries after which the queue itself moves a message to the DLQ
    /// (SQS `maxReceiveCount`): a message with this `receive_count` is on
    /// its last delivery. `None` when unknown.
    fn max_receive_count(&self) -> Option<u32> {
        None
    }
    /// Receive up to `max` (1..=[`Queue::max_receive`]) messages, hiding
    /// them for `visibility`; waits up to `wait` for the first one (long
    /// poll).
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>>;
    /// Delete a received message (processing done).
    async fn delete(&self, receipt: &str) -> Result<()>;
    /// Extend or shorten the visibility of a received message (0 = now).
    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<()>;
    /// Move a received message to the DLQ at once with `reason` attached.
    async fn dead_letter(&self, msg: &ReceivedMessage, reason: &str) -> Result<()>;
    /// Up to `limit` dead letters `filter` matches, oldest first, without
    /// consuming them.
    async fn dlq_list(&self, filter: &DlqFilter, limit: usize) -> Result<Vec<DeadLetter>>;
    /// Move dead letters back to the main queue keeping group id, dedup id
    /// and their order within a group. Returns how many moved.
    async fn dlq_redrive(&self, which: Redrive) -> Result<usize>;
    /// Approximate message counts.
    async fn stats(&self) -> Result<QueueStats>;
}

//! The ingress's "enqueue exactly once" as one port call: claim the event id
//! in the ledger, send the message to the queue, mark the claim enqueued.
//!
//! [`ComposedIntake`] does it with three calls on any ledger and queue (AWS:
//! DynamoDB and SQS cannot share a transaction). The embedded backend does
//! it in ONE write job — one transaction, one share of a group-commit fsync
//! instead of three sequential ones — which is what makes durable acks
//! cheap on one machine. Both give the same answers.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{CreateOutcome, Ledger, LedgerRecord, OutgoingMessage, Queue, Result};

/// One "enqueue exactly once" request.
#[derive(Debug, Clone)]
pub struct EnqueueOnce {
    /// The ledger key: the envelope's event id.
    pub key: String,
    /// sha256 of the normalized payload (see [`LedgerRecord::payload_hash`]).
    pub payload_hash: String,
    /// Random token of this attempt (holds the claim while in progress).
    pub owner: String,
    /// How long the claim holds before another attempt may take it over.
    pub in_progress_for: Duration,
    /// How long the record is kept once created.
    pub keep_for: Duration,
    /// What to send.
    pub message: OutgoingMessage,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// This call enqueued the message and marked the ledger record.
    Enqueued,
    /// A live record exists (enqueued, or claimed by a concurrent attempt);
    /// nothing was sent. The caller compares payload hashes and states.
    Exists(LedgerRecord),
}

/// Enqueue exactly once per event id: the ingress's one port call.
#[async_trait]
pub trait Intake: Send + Sync + std::fmt::Debug {
    /// Claim, send, mark. On a send failure nothing stays claimed (the claim
    /// is released) and the error is returned: never report `Enqueued` for
    /// something not durably enqueued.
    async fn enqueue_once(&self, req: EnqueueOnce) -> Result<EnqueueOutcome>;
}

/// The three-call implementation over any ledger and queue.
#[derive(Debug, Clone)]
pub struct ComposedIntake {
    /// Where the claim is kept.
    pub ledger: Arc<dyn Ledger>,
    /// Where the message goes.
    pub queue: Arc<dyn Queue>,
}

#[async_trait]
impl Intake for ComposedIntake {
    async fn enqueue_once(&self, req: EnqueueOnce) -> Result<EnqueueOutcome> {
        let created = self
            .ledger
            .try_create(
                &req.key,
                &req.payload_hash,
                &req.owner,
                req.in_progress_for,
                req.keep_for,
            )
            .await?;
        if let CreateOutcome::Exists(record) = created {
            return Ok(EnqueueOutcome::Exists(record));
        }
        if let Err(e) = self.queue.send(req.message).await {
            if let Err(release) = self.ledger.release(&req.key, &req.owner).await {
                // The claim expires after `in_progress_for`; a retry then
                // takes it over.
                tracing::warn!(error = %release, "could not release the ledger claim");
            }
            return Err(e);
        }
        if let Err(e) = self.ledger.mark_enqueued(&req.key, &req.owner).await {
            // The message IS durably enqueued. An unmarked claim expires; a
            // later retry re-sends with the same dedup id (dropped by the
            // queue within its window) and the event log's id guard makes
            // any later copy a no-op.
            tracing::warn!(error = %e, "enqueued but could not mark the ledger record");
        }
        Ok(EnqueueOutcome::Enqueued)
    }
}

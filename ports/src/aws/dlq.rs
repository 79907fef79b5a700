//! The DLQ tools of the SQS queue: listing without consuming and redrive.
//! Semantics and their SQS limits are in the docs of `queue.rs`.
use std::time::Duration;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, Message};

use super::error::{built, from_sdk};
use super::item::from_millis;
use super::sqs::{ATTR_DEDUP, ATTR_DLQ_META, AwsQueue, DlqMeta, message_attr, parse_received};
use crate::queue::ATTR_DLQ_REASON;
use crate::{DeadLetter, DlqFilter, PortError, Redrive, Result};

/// How long `dlq_list` holds the messages it looks at (released at once
/// after; this only matters if the process dies mid-listing).
const DLQ_HOLD: Duration = Duration::from_secs(30);
/// How long `dlq_redrive` holds the messages it skips: long enough for a
/// redrive of thousands of messages, released explicitly at the end.
const REDRIVE_HOLD: Duration = Duration::from_secs(300);
/// Long poll used to notice that the DLQ has nothing more to give.
const DLQ_WAIT: Duration = Duration::from_secs(1);
/// Bound on DLQ receives per redrive (10 messages each).
const MAX_REDRIVE_BATCHES: usize = 10_000;

impl AwsQueue {
    /// [`crate::Queue::dlq_list`] (see the module docs).
    pub(super) async fn list_dead_letters(
        &self,
        filter: &DlqFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let mut held = Vec::new();
        let mut letters = Vec::new();
        let mut failure = None;
        // Every message looked at stays held until the end, so each receive
        // brings new ones until the DLQ has no more to give.
        for _ in 0..MAX_REDRIVE_BATCHES {
            if letters.len() >= limit {
                break;
            }
            // A filtered listing may look at the whole DLQ to fill `limit`:
            // it holds what it saw as long as a redrive does.
            let (want, hold) = if filter.is_everything() {
                ((limit - letters.len()).min(10) as u32, DLQ_HOLD)
            } else {
                (10, REDRIVE_HOLD)
            };
            let batch = match self.receive_from(&self.dlq_url, want, hold, DLQ_WAIT).await {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for m in &batch {
                held.extend(m.receipt_handle().map(str::to_owned));
                match self.parse_dead_letter(m) {
                    Ok(dl) if filter.matches(&dl) => letters.push(dl),
                    Ok(_) => {}
                    Err(e) => failure = failure.or(Some(e)),
                }
            }
        }
        // Always hand the messages back, even after a failure.
        self.release_dlq(&held).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        // Receive order is per group; order across groups by send time.
        letters.sort_by_key(|d| d.sent_at);
        letters.truncate(limit);
        Ok(letters)
    }

    /// [`crate::Queue::dlq_redrive`] (see the module docs).
    pub(super) async fn redrive(&self, which: Redrive) -> Result<usize> {
        let mut moved = 0;
        let mut skipped = Vec::new();
        let mut failure = None;
        'batches: for _ in 0..MAX_REDRIVE_BATCHES {
            let batch = match self
                .receive_from(&self.dlq_url, 10, REDRIVE_HOLD, DLQ_WAIT)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for m in &batch {
                let receipt = m.receipt_handle().unwrap_or_default().to_owned();
                let dl = match self.parse_dead_letter(m) {
                    Ok(dl) => dl,
                    Err(e) => {
                        skipped.push(receipt);
                        failure = failure.or(Some(e));
                        continue;
                    }
                };
                let take = match &which {
                    Redrive::One(id) => moved == 0 && dl.id == *id,
                    Redrive::Matching(filter) => filter.matches(&dl),
                };
                if !take || failure.is_some() {
                    skipped.push(receipt);
                    continue;
                }
                let mut attributes = dl.attributes;
                attributes.insert(ATTR_DEDUP.into(), dl.dedup_id);
                let transport_dedup = format!("redrive-{}", m.message_id().unwrap_or(&dl.id));
                let sent = self
                    .send_to(
                        &self.url,
                        &dl.group_id,
                        &transport_dedup,
                        &dl.body,
                        &attributes,
                    )
                    .await;
                match sent {
                    Ok(_) => match self.delete_from(&self.dlq_url, &receipt).await {
                        Ok(()) => moved += 1,
                        Err(e) => failure = Some(e),
                    },
                    Err(e) => {
                        skipped.push(receipt);
                        failure = Some(e);
                    }
                }
            }
            if failure.is_some() || (matches!(which, Redrive::One(_)) && moved == 1) {
                break 'batches;
            }
        }
        self.release_dlq(&skipped).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Redrive::One(id) = &which
            && moved == 0
        {
            return Err(PortError::NotFound(format!("dead letter {id}")));
        }
        tracing::info!(moved, "dead letters redriven");
        Ok(moved)
    }

    /// Make held DLQ messages visible again, in the order given.
    async fn release_dlq(&self, receipts: &[String]) -> Result<()> {
        for chunk in receipts.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, r) in chunk.iter().enumerate() {
                entries.push(built(
                    "visibility entry",
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build(),
                )?);
            }
            let out = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| from_sdk("sqs release dlq messages", e))?;
            // A receipt that went stale (held past its visibility) belongs
            // to a message that is visible again anyway.
            if !out.failed().is_empty() {
                tracing::warn!(
                    failed = out.failed().len(),
                    "some dead letters could not be released; they reappear when their hold ends"
                );
            }
        }
        Ok(())
    }

    fn parse_dead_letter(&self, m: &Message) -> Result<DeadLetter> {
        let received = parse_received(m)?;
        let meta: Option<DlqMeta> =
            message_attr(m, ATTR_DLQ_META).and_then(|j| serde_json::from_str(&j).ok());
        let reason = message_attr(m, ATTR_DLQ_REASON)
            .unwrap_or_else(|| format!("exceeded max receive count ({})", self.max_receive_count));
        Ok(match meta {
            Some(meta) => DeadLetter {
                id: meta.id,
                group_id: received.group_id,
                dedup_id: meta.dedup_id,
                body: received.body,
                attributes: received.attributes,
                reason,
                receive_count: meta.receive_count,
                sent_at: from_millis(meta.sent_at_ms)?,
            },
            // Moved by the redrive policy: SQS keeps id, group, dedup id and
            // send time; it was received exactly max_receive_count times
            // (ApproximateReceiveCount now also counts DLQ looks).
            None => DeadLetter {
                id: received.message_id,
                group_id: received.group_id,
                dedup_id: received.dedup_id,
                body: received.body,
                attributes: received.attributes,
                reason,
                receive_count: self.max_receive_count,
                sent_at: received.sent_at,
            },
        })
    }
}

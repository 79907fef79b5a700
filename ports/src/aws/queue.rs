//! The queue on SQS: FIFO queue `<prefix>-events.fifo` with a RedrivePolicy
//! to the FIFO DLQ `<prefix>-events-dlq.fifo` after `max_receive_count`
//! receives. SQS itself enforces group order, in-flight blocking, visibility
//! and the dedup window; this adapter maps the calls and adds the DLQ tools.
//!
//! Dead letters:
//! - Moved by SQS (too many receives): same message id, group and dedup id;
//!   no `dlq_reason`, so the reason reads "exceeded max receive count (N)".
//! - Sent by [`Queue::dead_letter`]: the body and attributes plus
//!   `dlq_reason` and `dlq_meta` (JSON: original id, dedup id, receive
//!   count, send time). Its DLQ dedup id is the *main-queue message id*, so a
//!   retried dead-letter of the same delivery is deduplicated while a
//!   redriven message that fails again (new message id) is not swallowed by
//!   the DLQ's 5-minute dedup window.
//! - `dlq_list` receives from the DLQ with a short visibility and sets it
//!   back to 0 at once; SQS FIFO hands out at most 10 messages of one group
//!   per receive while the rest of that group waits behind them, so a
//!   listing shows at most 10 per group, and two listings at the same time
//!   see each other's messages as in flight.
//! - `dlq_redrive` re-sends with the original group id and keeps the
//!   original dedup id as the message's logical dedup id (attribute
//!   `dedup_id`, reported as [`ReceivedMessage::dedup_id`]), while the SQS
//!   `MessageDeduplicationId` of the re-send is `redrive-<DLQ message id>`.
//!   Reason: SQS suppresses a dedup id for 5 minutes after its *first* send,
//!   even once deleted, so re-sending the original id within that window
//!   would be accepted and silently dropped (moto does not enforce this,
//!   see `docs/aws.md`). Retrying the same redrive stays deduplicated.
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;

use super::error::from_sdk;
use super::sqs::{ATTR_DLQ_META, AwsQueue, DlqMeta, RESERVED, parse_received, secs, stale_receipt};
use crate::queue::ATTR_DLQ_REASON;
use crate::{
    DeadLetter, DlqFilter, OutgoingMessage, PortError, Queue, QueueStats, ReceivedMessage, Redrive,
    Result,
};

/// SQS allows 10 message attributes; `dead_letter` adds two.
const MAX_USER_ATTRIBUTES: usize = 8;
/// Longest reason kept (SQS bounds the whole message at 256 KiB).
const MAX_REASON: usize = 4096;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[async_trait]
impl Queue for AwsQueue {
    fn receives_outlive_their_caller(&self) -> bool {
        true
    }

    fn max_receive_count(&self) -> Option<u32> {
        Some(self.max_receive_count)
    }

    async fn send(&self, msg: OutgoingMessage) -> Result<String> {
        if msg.attributes.len() > MAX_USER_ATTRIBUTES {
            return Err(PortError::Invalid(format!(
                "at most {MAX_USER_ATTRIBUTES} message attributes (SQS allows 10; the DLQ adds 2)"
            )));
        }
        for reserved in RESERVED {
            if msg.attributes.contains_key(reserved) {
                return Err(PortError::Invalid(format!(
                    "attribute {reserved} is reserved for the DLQ"
                )));
            }
        }
        // Checked here too, so the answer does not depend on how a server
        // words its refusal.
        crate::queue::check_size(&msg)?;
        self.send_to(
            &self.url,
            &msg.group_id,
            &msg.dedup_id,
            &msg.body,
            &msg.attributes,
        )
        .await
    }

    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>> {
        self.receive_from(&self.url, max, visibility, wait)
            .await?
            .iter()
            .map(parse_received)
            .collect()
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        self.delete_batched(receipt).await
    }

    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<()> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(visibility, 43_200))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| stale_receipt(from_sdk("sqs change visibility", e)))
    }

    async fn dead_letter(&self, msg: &ReceivedMessage, reason: &str) -> Result<()> {
        let meta = DlqMeta {
            id: msg.message_id.clone(),
            dedup_id: msg.dedup_id.clone(),
            receive_count: msg.receive_count,
            sent_at_ms: msg.sent_at.timestamp_millis(),
        };
        let meta = serde_json::to_string(&meta)
            .map_err(|e| PortError::Invalid(format!("dlq meta: {e}")))?;
        let mut attributes = msg.attributes.clone();
        attributes.insert(
            ATTR_DLQ_REASON.into(),
            truncate(reason, MAX_REASON).to_owned(),
        );
        attributes.insert(ATTR_DLQ_META.into(), meta);
        self.send_to(
            &self.dlq_url,
            &msg.group_id,
            &msg.message_id,
            &msg.body,
            &attributes,
        )
        .await?;
        self.delete_from(&self.url, &msg.receipt).await?;
        tracing::info!(message_id = %msg.message_id, "message dead-lettered");
        Ok(())
    }

    async fn dlq_list(&self, filter: &DlqFilter, limit: usize) -> Result<Vec<DeadLetter>> {
        self.list_dead_letters(filter, limit).await
    }

    async fn dlq_redrive(&self, which: Redrive) -> Result<usize> {
        self.redrive(which).await
    }

    async fn stats(&self) -> Result<QueueStats> {
        let counts = |url: &str| {
            let sqs = self.sqs.clone();
            let url = url.to_owned();
            async move {
                let out = sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .map_err(|e| from_sdk("sqs stats", e))?;
                let get = |name: QueueAttributeName| -> u64 {
                    out.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                Ok::<_, PortError>((
                    get(QueueAttributeName::ApproximateNumberOfMessages),
                    get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                ))
            }
        };
        let ((visible, in_flight), (dlq_visible, dlq_hidden)) =
            futures::try_join!(counts(&self.url), counts(&self.dlq_url))?;
        Ok(QueueStats {
            visible,
            in_flight,
            dlq: dlq_visible + dlq_hidden,
            // SQS exposes the oldest age only as a CloudWatch metric.
            oldest_age: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}

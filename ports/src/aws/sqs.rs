//! The SQS side of the queue: the [`AwsQueue`] handle, the send, receive
//! and delete calls the queue and its DLQ tools share, and how a received
//! message and its attributes read (the bookkeeping attributes the DLQ
//! adds included). The queue semantics are in the docs of `queue.rs`.
//!
//! Deletes of the main queue are batched without waiting: a delete that
//! finds no sender running starts one (a task of its own, so a caller that
//! stops waiting strands no one); deletes that arrive meanwhile wait and go
//! out together, up to 10 per `DeleteMessageBatch`, as soon as the call
//! before them returns. One at a time they cost what a `DeleteMessage`
//! does; under load one call serves many.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName as Sys,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use serde::{Deserialize, Serialize};

use super::error::{built, from_code, from_sdk};
use super::item::from_millis;
use crate::queue::ATTR_DLQ_REASON;
use crate::{PortError, ReceivedMessage, Result};

/// Attribute with the original identity of a directly dead-lettered message.
pub(super) const ATTR_DLQ_META: &str = "dlq_meta";
/// Attribute with the logical dedup id of a redriven message.
pub(super) const ATTR_DEDUP: &str = "dedup_id";
/// Attributes this adapter sets and strips; callers may not send them.
pub(super) const RESERVED: [&str; 3] = [ATTR_DLQ_REASON, ATTR_DLQ_META, ATTR_DEDUP];

/// The original identity of a directly dead-lettered message (attribute
/// `dlq_meta`, JSON).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DlqMeta {
    pub id: String,
    pub dedup_id: String,
    pub receive_count: u32,
    pub sent_at_ms: i64,
}

/// The queue and its DLQ on SQS, and the calls both share.
#[derive(Debug, Clone)]
pub(crate) struct AwsQueue {
    pub(super) sqs: Client,
    pub(super) url: String,
    pub(super) dlq_url: String,
    pub(super) max_receive_count: u32,
    deletes: Arc<Mutex<Deletes>>,
}

/// A delete waiting for its batch call, and where its result goes.
type WaitingDelete = (String, tokio::sync::oneshot::Sender<Result<()>>);

/// Deletes waiting for the main queue's next batch call.
#[derive(Debug, Default)]
struct Deletes {
    waiting: Vec<WaitingDelete>,
    /// A sender task is running (and sends these next).
    sending: bool,
}

/// SQS's most entries per batch call.
const MAX_BATCH: usize = 10;

/// Clears `sending` if the sender task ends without doing so (the runtime
/// shutting down mid-call), so the next delete starts another.
struct Sending<'a>(&'a Mutex<Deletes>);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).sending = false;
    }
}

/// The queue URL of `name`, or `NotFound` telling the operator to run init.
pub(crate) async fn queue_url(sqs: &Client, name: &str) -> Result<String> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => out
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| PortError::Corrupt(format!("sqs returned no url for {name}"))),
        Err(e) => match from_sdk(&format!("get url of queue {name}"), e) {
            PortError::NotFound(_) => Err(PortError::NotFound(format!(
                "sqs queue {name} does not exist: run `switchyard init --backend aws`"
            ))),
            other => Err(other),
        },
    }
}

/// SQS takes whole seconds; round up so a wait or hide is never shorter
/// than asked.
pub(super) fn secs(d: Duration, max: i32) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX).min(max)
}

fn string_attr(v: &str) -> Result<MessageAttributeValue> {
    built(
        "message attribute",
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build(),
    )
}

fn sys(m: &Message, name: Sys) -> Option<&str> {
    m.attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

/// String message attributes, minus the DLQ bookkeeping ones; a message
/// without a `traceparent` gets one from its AWSTraceHeader (X-Ray).
fn user_attributes(m: &Message) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = m
        .message_attributes()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
        .collect();
    if !a.contains_key("traceparent")
        && let Some(tp) = sys(m, Sys::AwsTraceHeader).and_then(crate::otel::traceparent_from_xray)
    {
        a.insert("traceparent".to_owned(), tp);
    }
    a
}

pub(super) fn message_attr(m: &Message, name: &str) -> Option<String> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

pub(super) fn parse_received(m: &Message) -> Result<ReceivedMessage> {
    let need = |v: Option<&str>, what: &str| {
        v.map(str::to_owned)
            .ok_or_else(|| PortError::Corrupt(format!("sqs message lacks {what}")))
    };
    let sent_ms: i64 = need(sys(m, Sys::SentTimestamp), "SentTimestamp")?
        .parse()
        .map_err(|_| PortError::Corrupt("sqs SentTimestamp is not a number".into()))?;
    Ok(ReceivedMessage {
        message_id: need(m.message_id(), "MessageId")?,
        receipt: need(m.receipt_handle(), "ReceiptHandle")?,
        group_id: need(sys(m, Sys::MessageGroupId), "MessageGroupId")?,
        dedup_id: match message_attr(m, ATTR_DEDUP) {
            Some(logical) => logical,
            None => need(
                sys(m, Sys::MessageDeduplicationId),
                "MessageDeduplicationId",
            )?,
        },
        body: m.body().unwrap_or_default().to_owned(),
        attributes: user_attributes(m),
        receive_count: sys(m, Sys::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        sent_at: from_millis(sent_ms)?,
    })
}

/// SQS FIFO answers an expired receipt with InvalidParameterValue ("The
/// receipt handle has expired") rather than ReceiptHandleIsInvalid: both
/// mean the receipt no longer names an in-flight delivery.
pub(super) fn stale_receipt(e: PortError) -> PortError {
    match e {
        PortError::Invalid(m) if m.to_ascii_lowercase().contains("receipt handle") => {
            PortError::NotFound(m)
        }
        other => other,
    }
}

impl AwsQueue {
    /// The queue at `url` with its DLQ at `dlq_url`.
    pub fn new(sqs: Client, url: String, dlq_url: String, max_receive_count: u32) -> Self {
        AwsQueue {
            sqs,
            url,
            dlq_url,
            max_receive_count,
            deletes: Arc::default(),
        }
    }

    /// Delete `receipt` from the main queue, batched with the deletes
    /// waiting beside it (see the module docs).
    pub(super) async fn delete_batched(&self, receipt: &str) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start_sender = {
            let mut d = self.deletes.lock().unwrap_or_else(|e| e.into_inner());
            d.waiting.push((receipt.to_owned(), tx));
            !std::mem::replace(&mut d.sending, true)
        };
        if start_sender {
            tokio::spawn(send_waiting(
                self.sqs.clone(),
                self.url.clone(),
                self.deletes.clone(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(PortError::Unavailable(
                "sqs delete: batch call dropped".into(),
            ))
        })
    }

    /// Delete `receipt` from the queue at `url`, one call.
    pub(super) async fn delete_from(&self, url: &str, receipt: &str) -> Result<()> {
        delete_one(&self.sqs, url, receipt).await
    }

    pub(super) async fn receive_from(
        &self,
        url: &str,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(secs(visibility, 43_200))
            .wait_time_seconds(secs(wait, 20))
            .message_system_attribute_names(Sys::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| from_sdk("sqs receive", e))?;
        Ok(out.messages().to_vec())
    }

    pub(super) async fn send_to(
        &self,
        url: &str,
        group_id: &str,
        dedup_id: &str,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<String> {
        let mut attrs = HashMap::with_capacity(attributes.len());
        for (k, v) in attributes {
            attrs.insert(k.clone(), string_attr(v)?);
        }
        // The trace context also as SQS's AWSTraceHeader (X-Ray), which
        // Lambda's event source hands on in each record.
        let xray = attributes
            .get("traceparent")
            .and_then(|tp| crate::otel::xray_from_traceparent(tp))
            .and_then(|h| {
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(h)
                    .build()
                    .ok()
            });
        let mut send = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_group_id(group_id)
            .message_deduplication_id(dedup_id)
            .message_body(body)
            .set_message_attributes((!attrs.is_empty()).then_some(attrs));
        if let Some(x) = xray {
            send = send
                .message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, x);
        }
        let out = send.send().await.map_err(|e| from_sdk("sqs send", e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

/// Send the waiting deletes, a batch at a time, until none wait; `sending`
/// is cleared under the same lock that finds the list empty, so a delete
/// queued after that starts the next sender.
async fn send_waiting(sqs: Client, url: String, deletes: Arc<Mutex<Deletes>>) {
    let guard = Sending(&deletes);
    loop {
        let batch: Vec<WaitingDelete> = {
            let mut d = deletes.lock().unwrap_or_else(|e| e.into_inner());
            if d.waiting.is_empty() {
                d.sending = false;
                std::mem::forget(guard);
                return;
            }
            let n = d.waiting.len().min(MAX_BATCH);
            d.waiting.drain(..n).collect()
        };
        send_deletes(&sqs, &url, batch).await;
    }
}

async fn delete_one(sqs: &Client, url: &str, receipt: &str) -> Result<()> {
    sqs.delete_message()
        .queue_url(url)
        .receipt_handle(receipt)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| stale_receipt(from_sdk("sqs delete", e)))
}

/// One call for `batch`, each waiting delete told its own result.
async fn send_deletes(sqs: &Client, url: &str, batch: Vec<WaitingDelete>) {
    if let [(receipt, _)] = batch.as_slice() {
        let result = delete_one(sqs, url, receipt).await;
        if let Some((_, tx)) = batch.into_iter().next() {
            let _ = tx.send(result);
        }
        return;
    }
    let entries: Result<Vec<_>> = batch
        .iter()
        .enumerate()
        .map(|(i, (receipt, _))| {
            built(
                "sqs delete batch entry",
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build(),
            )
        })
        .collect();
    let sent = match entries {
        Ok(entries) => sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| stale_receipt(from_sdk("sqs delete batch", e))),
        Err(e) => Err(e),
    };
    let out = match sent {
        Ok(out) => out,
        Err(e) => {
            for (_, tx) in batch {
                let _ = tx.send(Err(e.clone()));
            }
            return;
        }
    };
    let mut failed: HashMap<String, PortError> = out
        .failed()
        .iter()
        .map(|f| {
            let detail = format!(
                "sqs delete: {} ({})",
                f.message().unwrap_or_default(),
                f.code()
            );
            (
                f.id().to_owned(),
                stale_receipt(from_code(f.code(), detail)),
            )
        })
        .collect();
    for (i, (_, tx)) in batch.into_iter().enumerate() {
        let _ = tx.send(failed.remove(&i.to_string()).map_or(Ok(()), Err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_clamp() {
        assert_eq!(secs(Duration::ZERO, 20), 0);
        assert_eq!(secs(Duration::from_millis(1500), 20), 2);
        assert_eq!(secs(Duration::from_secs(60), 20), 20);
    }
}

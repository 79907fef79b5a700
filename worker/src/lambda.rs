//! The Lambda entry point for the SQS event source.
//!
//! Records of one message group are processed in order; after the first
//! record of a group that does not finish, that record and every later
//! record of the same group are reported as batch item failures (so FIFO
//! order holds), while other groups carry on. A group whose conversation
//! lease another process holds is handed back whole. Requires
//! `ReportBatchItemFailures` on the event source mapping.
use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{TimeZone, Utc};
use futures::future::join_all;
use lambda_runtime::LambdaEvent;
use ports::ReceivedMessage;
use tracing::Instrument;

use crate::Worker;
use crate::consumer::{Applied, BUSY_BACK_IN, Held, apply, backoff_for, process_guarded, release};
use crate::hold;
use crate::lease::{self, Taken};

/// Turn a Lambda SQS record into the queue port's message.
pub fn to_received(r: &SqsMessage) -> ReceivedMessage {
    let attr = |k: &str| r.attributes.get(k).cloned().unwrap_or_default();
    let sent_ms: i64 = attr("SentTimestamp").parse().unwrap_or(0);
    ReceivedMessage {
        message_id: r.message_id.clone().unwrap_or_default(),
        receipt: r.receipt_handle.clone().unwrap_or_default(),
        group_id: attr("MessageGroupId"),
        dedup_id: attr("MessageDeduplicationId"),
        body: r.body.clone().unwrap_or_default(),
        attributes: {
            let mut a: BTreeMap<String, String> = r
                .message_attributes
                .iter()
                .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
                .collect();
            // A message sent without our attribute (another producer) may
            // still carry an X-Ray trace.
            if let Some(tp) = record_traceparent(r) {
                a.entry("traceparent".to_owned()).or_insert(tp);
            }
            a
        },
        receive_count: attr("ApproximateReceiveCount").parse().unwrap_or(1),
        sent_at: Utc
            .timestamp_millis_opt(sent_ms)
            .single()
            .unwrap_or_else(Utc::now),
    }
}

/// One invocation: [`handle_batch`] in a span linked to every record's
/// trace context (OpenTelemetry's messaging conventions for a batch), then
/// the metrics it recorded are written as EMF and its spans exported
/// (Lambda may freeze the process as soon as it returns).
pub async fn handle_invocation(worker: &Worker, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
    let span = ports::otel::root_span(None, || {
        tracing::info_span!(
            "invocation",
            otel.name = "events process batch",
            otel.kind = "consumer",
            messaging.system = "aws_sqs",
            messaging.operation.type = "process",
            messaging.batch.message_count = event.payload.records.len(),
            faas.invocation_id = %event.context.request_id,
        )
    });
    // Lambda's own trace (active tracing), then each record's.
    if let Some(tp) = event
        .context
        .xray_trace_id
        .as_deref()
        .and_then(ports::otel::traceparent_from_xray)
    {
        ports::otel::add_link(&span, &tp);
    }
    for r in &event.payload.records {
        if let Some(tp) = record_traceparent(r) {
            ports::otel::add_link(&span, &tp);
        }
    }
    let response = handle_batch(worker, event.payload).instrument(span).await;
    ports::telemetry::flush_metrics(Some(&event.context.request_id));
    if ports::otel::enabled() {
        let _ = tokio::task::spawn_blocking(ports::otel::flush).await;
    }
    response
}

/// A record's trace context: its `traceparent` message attribute, else the
/// `AWSTraceHeader` system attribute (X-Ray) SQS keeps for it.
fn record_traceparent(r: &SqsMessage) -> Option<String> {
    r.message_attributes
        .get("traceparent")
        .and_then(|v| v.string_value.clone())
        .or_else(|| {
            r.attributes
                .get("AWSTraceHeader")
                .and_then(|h| ports::otel::traceparent_from_xray(h))
        })
}

/// Process one SQS batch. Finished records (done or dead-lettered) are
/// successes; the rest are reported failed and come back after their
/// visibility timeout. Every record is kept invisible by a heartbeat until
/// it is finished; the deletes of finished records are awaited after the
/// whole batch, before the invocation returns.
pub async fn handle_batch(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    if hold::paused(worker, hold::WORKER).await {
        // An invocation cannot wait out a pause: every record back, later
        // with each delivery (the retry schedule), none of it processed.
        let msgs: Vec<ReceivedMessage> = event.records.iter().map(to_received).collect();
        for msg in &msgs {
            let back_in = backoff_for(msg.receive_count).min(worker.config.max_retry_delay);
            release(worker, std::iter::once(msg), back_in).await;
        }
        return failures(msgs.into_iter().map(|m| m.message_id));
    }
    let mut groups: BTreeMap<String, Vec<&SqsMessage>> = BTreeMap::new();
    for r in &event.records {
        let group = r
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        groups.entry(group).or_default().push(r);
    }
    let per_group = groups.into_iter().map(|(group, records)| async move {
        let msgs: Vec<ReceivedMessage> = records.into_iter().map(to_received).collect();
        let first_count = msgs.first().map_or(1, |m| m.receive_count);
        let lease = match lease::take(worker, &group, first_count).await {
            Taken::Held(lease) => lease,
            Taken::Busy => {
                // Another process or instance works this conversation: all
                // of it back, seen again in a few seconds rather than after
                // the queue's (long) visibility timeout.
                release(worker, msgs.iter(), BUSY_BACK_IN).await;
                return msgs.into_iter().map(|m| m.message_id).collect();
            }
        };
        // Every record of the group stays invisible while the invocation
        // works through them (a batch may outlast the visibility timeout).
        let held = Held::new(
            worker,
            msgs.iter()
                .filter(|m| !m.receipt.is_empty())
                .map(|m| m.receipt.clone())
                .collect(),
            lease,
        );
        let mut failed = Vec::new();
        let mut blocked = false;
        for msg in msgs {
            if blocked {
                failed.push(msg.message_id);
                continue;
            }
            let d = process_guarded(worker, &msg).await;
            // Lambda deletes successes itself; `apply` also deletes, which is
            // harmless, and performs the dead-lettering and retry delays.
            if apply(worker, &msg, d).await != Applied::Finished {
                blocked = true;
                failed.push(msg.message_id.clone());
            }
            held.release(&msg.receipt);
        }
        held.finish().await;
        failed
    });
    let failed: Vec<String> = join_all(per_group).await.into_iter().flatten().collect();
    // Deletes run in the background; finish them before Lambda freezes us.
    worker.deletes.close();
    worker.deletes.wait().await;
    worker.deletes.reopen();
    failures(failed)
}

/// The response reporting `ids` failed (to be delivered again).
fn failures(ids: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in ids {
        let mut f = BatchItemFailure::default();
        f.item_identifier = id;
        response.batch_item_failures.push(f);
    }
    response
}

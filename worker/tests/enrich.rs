//! Enrichment over both backends: a minimal Richpanel webhook fetches the
//! ticket and records only the messages not seen before (loop prevention
//! for our own replies); an SES S3-action envelope reads the raw email from
//! the blob store; the optional model classifies, and the rules take over
//! when it fails.
#[macro_use]
mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use conversation::{Author, EventBody};
use downstream::fake::FakeConfig;
use worker::Disposition;

fn no_quota() -> FakeConfig {
    FakeConfig {
        richpanel_quota: None,
        ..FakeConfig::default()
    }
}

on_both_backends!(
    minimal_webhook_fetches_the_ticket_and_skips_seen_messages,
    ses_s3_pointer_reads_the_raw_email_from_the_blob_store,
    an_envelope_naming_a_foreign_bucket_is_dead_lettered_unread,
);

/// Receive the next message and process it directly.
async fn process_next(h: &Harness) -> Disposition {
    for _ in 0..20 {
        let got = h
            .backend
            .queue
            .receive(1, Duration::from_secs(30), Duration::from_millis(500))
            .await
            .expect("receive");
        if let Some(m) = got.into_iter().next() {
            let d = h.worker.process(&m).await;
            if d == Disposition::Done {
                h.backend.queue.delete(&m.receipt).await.expect("delete");
            } else {
                h.backend
                    .queue
                    .change_visibility(&m.receipt, Duration::ZERO)
                    .await
                    .expect("release");
            }
            return d;
        }
    }
    panic!("no message arrived");
}

fn minimal(ticket: &str, at: chrono::DateTime<Utc>) -> envelope::Envelope {
    envelope::normalize_richpanel(
        format!(r#"{{"ticket_id":"{ticket}","ticket_url":"https://app.richpanel.com/{ticket}","trigger":"customer_replied"}}"#)
            .as_bytes(),
        &envelope::NormalizeConfig::default(),
        at,
    )
    .expect("minimal body normalizes")
}

async fn minimal_webhook_fetches_the_ticket_and_skips_seen_messages(kind: &str) {
    let h = harness(kind, no_quota()).await;
    let first = minimal("T-min", Utc::now());
    enqueue(&h.backend, &first).await;
    assert_eq!(process_next(&h).await, Disposition::Done);
    let evs = events(&h.backend, "T-min").await;
    assert!(
        evs.iter().any(|e| e.event_id == first.event_id.as_str()
            && matches!(
                e.body,
                EventBody::TicketUpdated {
                    new_messages: 2,
                    ..
                }
            )),
        "{evs:#?}"
    );
    let customer: Vec<_> = evs
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::MessageReceived {
                message_id,
                author: Author::Customer,
                ..
            } => message_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        customer,
        vec!["T-min-m1".to_string(), "T-min-m2".to_string()]
    );

    // News again, later: the ticket now also holds our own reply, which is
    // operator-authored — recorded, never acted on; nothing seen twice.
    let writes_before = h.fake.writes().len();
    let second = minimal("T-min", Utc::now() + chrono::Duration::minutes(5));
    assert_ne!(second.event_id, first.event_id);
    enqueue(&h.backend, &second).await;
    assert_eq!(process_next(&h).await, Disposition::Done);
    let evs = events(&h.backend, "T-min").await;
    let received: Vec<(Author, String)> = evs
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::MessageReceived {
                message_id: Some(id),
                author,
                ..
            } => Some((*author, id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), 3, "{received:?} {:#?}", h.fake.writes());
    assert_eq!(received[2].0, Author::Operator);
    assert_eq!(
        h.fake.writes().len(),
        writes_before,
        "an operator message was acted on"
    );
    let c = conversation::rebuild(h.backend.events.as_ref(), "T-min")
        .await
        .expect("rebuild");
    assert_eq!(c.auto_replies_total, 1);
    assert_eq!(c.ticket_updates, 2);
}

const S3_NOTIFICATION: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/corpus/ses/aws-docs__s3-action-alert-notification.json"
));

/// The envelope of the SES S3-action notification (a blob pointer).
fn s3_notification_envelope() -> envelope::Envelope {
    let normalized = envelope::normalize(
        envelope::Source::Ses,
        S3_NOTIFICATION,
        &envelope::NormalizeConfig::default(),
        Utc::now(),
    )
    .expect("notification normalizes");
    let envelope::Normalized::Envelope(env) = normalized else {
        panic!("expected an envelope")
    };
    env
}

async fn ses_s3_pointer_reads_the_raw_email_from_the_blob_store(kind: &str) {
    let h = harness(kind, no_quota()).await;
    let mut env = s3_notification_envelope();
    let blob = env.blob.as_mut().expect("S3 action yields a blob pointer");
    // The deployment's own bucket (the docs example names another).
    blob.bucket = mail_bucket();
    let (bucket, key) = (blob.bucket.clone(), blob.key.clone());
    if kind == "aws" {
        ports::aws::ensure_bucket(&bucket).await.expect("bucket");
    }
    let stream = env.conversation_id.to_string();
    enqueue(&h.backend, &env).await;

    // The object is not there yet: retry later, record nothing.
    match process_next(&h).await {
        Disposition::Retry { reason, .. } => assert!(reason.contains("not found"), "{reason}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert!(events(&h.backend, &stream).await.is_empty());

    let raw = b"From: Buyer <buyer@example.com>\r\nTo: help@shop.example\r\nSubject: Return request\r\nMessage-ID: <r1@example.com>\r\n\r\nI would like to return my order #4321, the size is wrong.\r\n";
    h.backend
        .blobs
        .put(&bucket, &key, raw.to_vec())
        .await
        .expect("put blob");
    assert_eq!(process_next(&h).await, Disposition::Done);
    let evs = events(&h.backend, &stream).await;
    let text = evs
        .iter()
        .find_map(|e| match &e.body {
            EventBody::MessageReceived { text, .. } => Some(text.clone()),
            _ => None,
        })
        .expect("message recorded");
    assert!(text.contains("return my order #4321"), "{text}");
    let intent = evs.iter().find_map(|e| match &e.body {
        EventBody::DecisionMade(d) => d.intent.clone(),
        _ => None,
    });
    assert_eq!(intent.as_deref(), Some("returns"));
}

async fn an_envelope_naming_a_foreign_bucket_is_dead_lettered_unread(kind: &str) {
    let h = harness(kind, no_quota()).await;
    let mut env = s3_notification_envelope();
    let blob = env.blob.as_mut().expect("S3 action yields a blob pointer");
    blob.bucket = "someone-elses-bucket".to_owned();
    let stream = env.conversation_id.to_string();
    enqueue(&h.backend, &env).await;
    match process_next(&h).await {
        Disposition::Poison(reason) => {
            assert!(reason.contains("not a raw-mail bucket"), "{reason}")
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert!(events(&h.backend, &stream).await.is_empty());
}

async fn decided_by(h: &Harness, ticket: &str) -> conversation::DecidedBy {
    events(&h.backend, ticket)
        .await
        .iter()
        .find_map(|e| match &e.body {
            EventBody::DecisionMade(d) => Some(d.decided_by),
            _ => None,
        })
        .expect("decision recorded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_classifies_and_rules_take_over_when_it_fails() {
    let mut h = harness("embedded", no_quota()).await;
    let mut cfg = downstream::DownstreamConfig::default().pointed_at(&h.fake.base_url());
    for ds in [
        downstream::Downstream::Richpanel,
        downstream::Downstream::Openai,
    ] {
        let ep = cfg.endpoint_mut(ds);
        ep.api_key = Some(downstream::ApiKey("test-key".into()));
        ep.quota = downstream::config::QuotaConfig {
            requests: 10_000,
            period_ms: 1_000,
            burst: 1_000,
        };
    }
    h.worker.downstreams =
        downstream::Clients::new(cfg, h.backend.flags.clone(), h.backend.secrets.clone());
    h.worker.config.use_model = true;

    enqueue(
        &h.backend,
        &envelope("T-model", "m-1", "what is the order status please"),
    )
    .await;
    assert_eq!(process_next(&h).await, Disposition::Done);
    assert_eq!(
        decided_by(&h, "T-model").await,
        conversation::DecidedBy::Model
    );
    assert!(
        h.fake
            .requests()
            .iter()
            .any(|r| r.path.contains("chat/completions"))
    );

    // The model endpoint fails: the rules decide, nothing is lost.
    h.fake.set_config(FakeConfig {
        force_status: Some(500),
        richpanel_quota: None,
        ..FakeConfig::default()
    });
    enqueue(
        &h.backend,
        &envelope("T-model-2", "m-1", "where is my order?"),
    )
    .await;
    let _ = process_next(&h).await;
    assert_eq!(
        decided_by(&h, "T-model-2").await,
        conversation::DecidedBy::Rules
    );
}

//! Bad input gets a clear answer, the same on both backends: ids and sizes
//! the AWS backend cannot store.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use ingress::IngressConfig;
use ports::{EnqueueOnce, EnqueueOutcome, Intake, PortError};

/// The envelope the queue holds (exactly one expected).
async fn queued(tb: &TestBackend) -> serde_json::Value {
    let msgs = tb
        .backend
        .queue
        .receive(10, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1, "{}", tb.name);
    serde_json::from_str(&msgs[0].body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_kb_message_id_and_a_5_kb_ticket_id_are_accepted_alike_on_both_backends() {
    for tb in backends().await {
        let app = serve(tb.backend.clone(), IngressConfig::default()).await;
        let ticket = format!("{}{}", unique("T"), "t".repeat(5 * 1024));
        let body = ticket_body(&ticket, &"m".repeat(3 * 1024), "hello");
        let (status, json) = app.richpanel(&body).await;
        assert_eq!(status, 202, "{}: {json}", tb.name);
        let event_id = json["event_id"].as_str().unwrap();
        assert!(
            event_id.len() <= 1024,
            "{}: {} bytes",
            tb.name,
            event_id.len()
        );
        let (status, json) = app.richpanel(&body).await;
        assert_eq!(
            (status, &json["status"]),
            (200, &"duplicate".into()),
            "{}",
            tb.name
        );
        let env = queued(&tb).await;
        assert_eq!(
            env["richpanel"]["ticket_id"],
            ticket.as_str(),
            "{}",
            tb.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tags_are_capped_alike_on_both_backends() {
    for tb in backends().await {
        let app = serve(tb.backend.clone(), IngressConfig::default()).await;
        // 250 KB as a comma list: under the route's limit, but as a JSON
        // array in the envelope past what one SQS message holds.
        let tags: Vec<String> = (0..10_000).map(|i| format!("{i:0>24}")).collect();
        let mut body: serde_json::Value =
            serde_json::from_str(&ticket_body(&unique("T"), "m1", "hi")).unwrap();
        body["tags"] = tags.join(",").into();
        let (status, json) = app.richpanel(&body.to_string()).await;
        assert_eq!(status, 202, "{}: {json}", tb.name);
        let env = queued(&tb).await;
        assert_eq!(env["richpanel"]["tags"].as_array().unwrap().len(), 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_control_bytes_that_normalize_past_the_sqs_message_limit_get_413_on_both_backends() {
    for tb in backends().await {
        let app = serve(tb.backend.clone(), IngressConfig::default()).await;
        // 60 KB of raw control bytes: the repair pass escapes each one, and
        // the envelope writes it as `\u0001` (six bytes): 360 KB.
        let body = format!(
            "{{\"ticket_id\": \"{}\", \"message_id\": \"m1\", \"message\": \"hi\", \"customer_id\": \"{}\"}}",
            unique("T"),
            "\u{1}".repeat(60_000)
        );
        let (status, json) = app.richpanel(&body).await;
        assert_eq!(status, 413, "{}: {json}", tb.name);
        assert_eq!(json["error"], "envelope_too_large", "{}", tb.name);
        assert!(json["reason"].as_str().unwrap().contains("bytes"), "{json}");
        assert_eq!(app.visible().await, 0, "{}: nothing stored", tb.name);
    }
}

/// An intake whose backend refuses every input as unstorable.
#[derive(Debug)]
struct RefusingIntake;

#[async_trait]
impl Intake for RefusingIntake {
    async fn enqueue_once(&self, _req: EnqueueOnce) -> ports::Result<EnqueueOutcome> {
        Err(PortError::Invalid(
            "ledger put: Item size has exceeded the maximum allowed size".into(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_backend_refuses_as_invalid_gets_400_not_503() {
    for mut tb in backends().await {
        tb.backend.intake = Arc::new(RefusingIntake);
        let app = serve(tb.backend.clone(), IngressConfig::default()).await;
        let resp = app
            .http
            .post(app.url("/webhooks/richpanel"))
            .header("X-Switchyard-Token", TOKEN)
            .header("content-type", "application/json")
            .body(ticket_body(&unique("T"), "m1", "hi"))
            .send()
            .await
            .unwrap();
        assert!(!resp.headers().contains_key("retry-after"), "{}", tb.name);
        let (status, json) = decode(resp).await;
        assert_eq!(status, 400, "{}: {json}", tb.name);
        assert_eq!(json["error"], "invalid_input", "{}", tb.name);
    }
}

//! Bad input gets a clear answer, the same on both backends: ids and sizes
//! the AWS backend cannot store, 409 only for a different accepted payload,
//! and a 413 the sender can read.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use ingress::IngressConfig;
use ports::{EnqueueOnce, EnqueueOutcome, Intake, LedgerState, PortError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_backends!(
    a_3_kb_message_id_and_a_5_kb_ticket_id_are_accepted_alike_on_both_backends,
    ten_thousand_tags_are_capped_alike_on_both_backends,
    raw_control_bytes_that_normalize_past_the_sqs_message_limit_get_413_on_both_backends,
    input_the_backend_refuses_as_invalid_gets_400_not_503,
    a_different_payload_while_the_first_attempt_is_in_flight_waits_for_its_outcome,
    a_different_payload_finding_an_expiring_claim_takes_it_over,
    re_firing_a_rule_after_the_worker_tagged_the_ticket_is_200_duplicate,
    a_redelivery_recorded_under_the_hash_that_covered_tags_is_a_duplicate,
);

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

async fn a_3_kb_message_id_and_a_5_kb_ticket_id_are_accepted_alike_on_both_backends(
    tb: TestBackend,
) {
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

async fn ten_thousand_tags_are_capped_alike_on_both_backends(tb: TestBackend) {
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

async fn raw_control_bytes_that_normalize_past_the_sqs_message_limit_get_413_on_both_backends(
    tb: TestBackend,
) {
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

async fn input_the_backend_refuses_as_invalid_gets_400_not_503(mut tb: TestBackend) {
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

/// A claim on the event id of `body` held by `owner` with another hash.
async fn claim_other(tb: &TestBackend, event_id: &str, owner: &str, claim: Duration) {
    tb.backend
        .ledger
        .try_create(
            event_id,
            "hash-of-another-payload",
            owner,
            claim,
            Duration::from_secs(600),
        )
        .await
        .unwrap();
}

async fn a_different_payload_while_the_first_attempt_is_in_flight_waits_for_its_outcome(
    tb: TestBackend,
) {
    let cfg = IngressConfig {
        in_flight_wait_ms: 1500,
        ..IngressConfig::default()
    };
    let app = Arc::new(serve(tb.backend.clone(), cfg).await);
    let post = |body: String| {
        let app = app.clone();
        tokio::spawn(async move { app.richpanel(&body).await })
    };

    // Still in flight after the wait: 503, never a permanent 409.
    let ticket = unique("T");
    claim_other(
        &tb,
        &format!("evt:rp:{ticket}:m1"),
        "slow",
        Duration::from_secs(60),
    )
    .await;
    let (status, json) = post(ticket_body(&ticket, "m1", "hi")).await.unwrap();
    assert_eq!(status, 503, "{}: {json}", tb.name);

    // The first attempt fails and releases its claim: this one is accepted.
    let ticket = unique("T");
    let id = format!("evt:rp:{ticket}:m1");
    claim_other(&tb, &id, "failing", Duration::from_secs(60)).await;
    let answer = post(ticket_body(&ticket, "m1", "hi"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    tb.backend.ledger.release(&id, "failing").await.unwrap();
    let (status, json) = answer.await.unwrap();
    assert_eq!(status, 202, "{}: {json}", tb.name);

    // The first attempt ends enqueued with its other payload: now 409.
    let ticket = unique("T");
    let id = format!("evt:rp:{ticket}:m1");
    claim_other(&tb, &id, "winning", Duration::from_secs(60)).await;
    let answer = post(ticket_body(&ticket, "m1", "hi"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    tb.backend
        .ledger
        .mark_enqueued(&id, "winning")
        .await
        .unwrap();
    let (status, json) = answer.await.unwrap();
    assert_eq!(status, 409, "{}: {json}", tb.name);
    assert_eq!(app.visible().await, 1, "{}", tb.name);
}

async fn a_different_payload_finding_an_expiring_claim_takes_it_over(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let ticket = unique("T");
    let id = format!("evt:rp:{ticket}:m1");
    // A first attempt that died: never answered 2xx, nothing sent.
    claim_other(&tb, &id, "crashed", Duration::from_millis(400)).await;
    let body = ticket_body(&ticket, "m1", "hi");
    let (status, json) = app.richpanel(&body).await;
    assert_eq!(status, 202, "{}: {json}", tb.name);
    // The taker's payload is the one recorded and compared from now on.
    let rec = tb.backend.ledger.get(&id).await.unwrap().unwrap();
    assert_eq!(rec.state, LedgerState::Enqueued, "{}", tb.name);
    assert_ne!(rec.payload_hash, "hash-of-another-payload", "{}", tb.name);
    let (status, _) = app.richpanel(&body).await;
    assert_eq!(status, 200, "{}", tb.name);
    assert_eq!(app.visible().await, 1, "{}", tb.name);
}

async fn re_firing_a_rule_after_the_worker_tagged_the_ticket_is_200_duplicate(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let ticket = unique("T");
    let mut body: serde_json::Value =
        serde_json::from_str(&ticket_body(&ticket, "m1", "where is my parcel?")).unwrap();
    body["tags"] = serde_json::json!([]);
    let (status, first) = app.richpanel(&body.to_string()).await;
    assert_eq!(status, 202, "{}: {first}", tb.name);
    body["tags"] = serde_json::json!(["switchyard-processed", "route-shipping"]);
    body["assignee_id"] = "agent-7".into();
    let (status, json) = app.richpanel(&body.to_string()).await;
    assert_eq!(status, 200, "{}: {json}", tb.name);
    assert_eq!(json["status"], "duplicate");
}

async fn a_redelivery_recorded_under_the_hash_that_covered_tags_is_a_duplicate(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let mut body: serde_json::Value =
        serde_json::from_str(&ticket_body(&unique("T"), "m1", "hi")).unwrap();
    body["tags"] = serde_json::json!(["vip"]);
    let body = body.to_string();
    // Accepted by the previous release, whose hash covered the tags.
    let env = match envelope::normalize(
        envelope::Source::Richpanel,
        body.as_bytes(),
        &envelope::NormalizeConfig::default(),
        chrono::Utc::now(),
    )
    .unwrap()
    {
        envelope::Normalized::Envelope(env) => env,
        other => panic!("{other:?}"),
    };
    let old = env.legacy_payload_hash().expect("tags make it differ");
    assert_ne!(old, env.payload_hash());
    let ledger = &tb.backend.ledger;
    let id = env.event_id.as_str();
    let keep = Duration::from_secs(600);
    ledger
        .try_create(id, &old, "old", keep, keep)
        .await
        .unwrap();
    ledger.mark_enqueued(id, "old").await.unwrap();
    let (status, json) = app.richpanel(&body).await;
    assert_eq!(status, 200, "{}: {json}", tb.name);
}

/// POST `head` then `body` over a raw connection, as a plain client does
/// (no `Expect: 100-continue`), paced like a sender on a real network (on
/// loopback the kernel buffers would swallow a few MB at once), and return
/// what the server answered.
async fn raw_post(app: &App, head: String, body: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let sent = within(30, async {
        conn.write_all(head.as_bytes()).await?;
        for part in body.chunks(64 * 1024) {
            conn.write_all(part).await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    let mut answer = Vec::new();
    let read = within(30, conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        sent.is_ok() && read.is_ok(),
        "sent {sent:?}, read {read:?}, answer {answer:?}"
    );
    answer
}

fn head(extra: &str) -> String {
    format!(
        "POST /webhooks/richpanel HTTP/1.1\r\nHost: localhost\r\nX-Switchyard-Token: {TOKEN}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_mb_body_with_content_length_gets_a_readable_413_not_a_reset() {
    let tb = embedded().await;
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let body = vec![b' '; 3 * 1024 * 1024];
    let answer = raw_post(
        &app,
        head(&format!("Content-Length: {}\r\n", body.len())),
        &body,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("payload_too_large"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_mb_chunked_body_gets_a_readable_413_not_a_reset() {
    let tb = embedded().await;
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let chunk = vec![b' '; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..48 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_post(&app, head("Transfer-Encoding: chunked\r\n"), &body).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waiting_for_100_continue_gets_the_413_at_once() {
    let tb = embedded().await;
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let h = head("Content-Length: 3145728\r\nExpect: 100-continue\r\n");
    conn.write_all(h.as_bytes()).await.unwrap();
    // No body is sent: the answer must not wait for one.
    let mut answer = vec![0; 1024];
    let n = within(3, conn.read(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
}

//! Storage limits: what DynamoDB and SQS refuse, every backend refuses the
//! same way (`Invalid`, never a transient error), and accepts up to the
//! limit.
use std::time::Duration;

use ports::{CreateOutcome, NewEvent, PortError};

use super::{Harness, msg, secs};

const KEEP: Duration = Duration::from_secs(3600);

fn invalid<T: std::fmt::Debug>(what: &str, r: ports::Result<T>) {
    assert!(
        matches!(r, Err(PortError::Invalid(_))),
        "{what}: expected Invalid, got {r:?}"
    );
}

/// A key one byte over DynamoDB's 2048-byte partition key is `Invalid` on
/// create and get; one at the limit is stored.
pub async fn ledger_key_over_the_dynamodb_limit_is_invalid(h: &Harness) {
    let l = &h.b.ledger;
    let over = format!("evt:{}", "k".repeat(ports::MAX_KEY_BYTES - 3));
    invalid(
        "create",
        l.try_create(&over, "h", "o", secs(30), KEEP).await,
    );
    invalid("get", l.get(&over).await);
    let at = format!("evt:{}", "k".repeat(ports::MAX_KEY_BYTES - 4));
    assert!(matches!(
        l.try_create(&at, "h", "o", secs(30), KEEP).await,
        Ok(CreateOutcome::Created(_))
    ));
    assert!(l.get(&at).await.expect("get").is_some());
}

/// A message over SQS's 256 KiB (body plus attributes) is `Invalid` and
/// nothing is enqueued; one at the limit is delivered.
pub async fn queue_message_over_the_sqs_limit_is_invalid(h: &Harness) {
    let q = &h.b.queue;
    let mut m = msg("g-big", "d-big-1", "");
    let attributes: usize = m
        .attributes
        .iter()
        .map(|(k, v)| k.len() + "String".len() + v.len())
        .sum();
    m.body = "x".repeat(ports::MAX_MESSAGE_BYTES - attributes + 1);
    invalid("send", q.send(m.clone()).await);
    m.body.pop();
    m.dedup_id = "d-big-2".into();
    q.send(m).await.expect("a message at the limit");
    let got = q.receive(10, secs(30), secs(2)).await.expect("receive");
    assert_eq!(got.len(), 1, "only the message at the limit");
    assert_eq!(got[0].dedup_id, "d-big-2");
}

/// The intake refuses an oversized message as `Invalid` and leaves no
/// claim behind (a retry is not blocked, and it is never a 503).
pub async fn intake_over_the_limits_is_invalid_and_claims_nothing(h: &Harness) {
    let req = |key: String, body: String| ports::EnqueueOnce {
        key,
        payload_hash: "h".into(),
        owner: "o".into(),
        in_progress_for: secs(30),
        keep_for: KEEP,
        message: msg("g-intake-big", "d-intake-big", &body),
    };
    let big = "x".repeat(ports::MAX_MESSAGE_BYTES + 1);
    invalid(
        "oversized message",
        h.b.intake.enqueue_once(req("evt:big".into(), big)).await,
    );
    assert!(h.b.ledger.get("evt:big").await.expect("get").is_none());
    let long_key = "k".repeat(ports::MAX_KEY_BYTES + 1);
    invalid(
        "long key",
        h.b.intake.enqueue_once(req(long_key, "small".into())).await,
    );
}

/// Stream names and event ids the AWS log could not key (`s#` / `e#` plus
/// 2046 bytes) are `Invalid`; nothing is appended.
pub async fn events_keys_over_the_dynamodb_limit_are_invalid(h: &Harness) {
    let e = &h.b.events;
    let ev = |id: String| NewEvent {
        event_id: id,
        kind: "MessageReceived".into(),
        body: "{}".into(),
    };
    let long = "s".repeat(ports::MAX_LOG_KEY_BYTES + 1);
    invalid(
        "stream",
        e.append(&long, 0, vec![ev("e-ok".into())], "p".into())
            .await,
    );
    invalid(
        "event id",
        e.append("conv-long-id", 0, vec![ev(long.clone())], "p".into())
            .await,
    );
    assert!(
        e.read_stream("conv-long-id", 0)
            .await
            .expect("read")
            .is_empty()
    );
    let at = "s".repeat(ports::MAX_LOG_KEY_BYTES);
    assert_eq!(
        e.append(&at, 0, vec![ev(at.clone())], "p".into())
            .await
            .expect("at the limit"),
        1
    );
}

//! Input the AWS backend could not store, or that the normalizer used to
//! turn into the wrong event: long ids, huge lists, re-fired rules after the
//! ticket changed, broken bodies that name a message, text-only retries.
mod common;

use chrono::Duration;
use common::{T0, at, rp};
use envelope::{Envelope, SourceKind};

/// What the worker treats as "fetch the ticket" (`worker/src/expand.rs`).
fn left_to_the_ticket_fetch(env: &Envelope) -> bool {
    env.meta.source == SourceKind::RichpanelHttpTarget
        && env.message.id.is_none()
        && env.message.text.trim().is_empty()
}

#[test]
fn a_3_kb_message_id_and_a_5_kb_ticket_id_give_ids_inside_dynamodb_key_limits() {
    let ticket = "t".repeat(5 * 1024);
    let message = "m".repeat(3 * 1024);
    let body = serde_json::json!({"ticket_id": ticket, "message_id": message, "message": "hi"})
        .to_string();
    let env = rp(&body, at(T0)).expect("env");
    // The ledger key (partition key, ≤ 2048 bytes) and the event log's
    // `s#<conversation>` / `e#<event id>` keys.
    assert!(env.event_id.as_str().len() <= 1024, "{}", env.event_id);
    assert!(env.conversation_id.as_str().len() <= 256);
    // A retry maps to the same ids; another long id to other ones.
    let again = rp(&body, at(T0) + Duration::hours(1)).expect("again");
    assert_eq!(
        (&again.event_id, &again.conversation_id),
        (&env.event_id, &env.conversation_id)
    );
    let other = serde_json::json!({"ticket_id": ticket, "message_id": format!("{message}2"), "message": "hi"})
        .to_string();
    assert_ne!(rp(&other, at(T0)).expect("other").event_id, env.event_id);
    // The ids as sent stay in the envelope (the worker fetches by them).
    assert_eq!(env.richpanel.ticket_id.as_deref(), Some(ticket.as_str()));
    assert_eq!(env.message.id.as_deref(), Some(message.as_str()));
    // Short ids are untouched.
    let short = rp(
        r#"{"ticket_id":"T-1","message_id":"m-1","message":"hi"}"#,
        at(T0),
    )
    .expect("short");
    assert_eq!(short.event_id.as_str(), "evt:rp:T-1:m-1");
}

#[test]
fn ten_thousand_tags_are_capped() {
    let tags: Vec<String> = (0..10_000).map(|i| format!("tag-{i}")).collect();
    let body =
        serde_json::json!({"ticket_id": "T-2", "message_id": "m-1", "message": "hi", "tags": tags})
            .to_string();
    let env = rp(&body, at(T0)).expect("env");
    assert_eq!(env.richpanel.tags.len(), envelope::MAX_LIST_ITEMS);
    assert_eq!(envelope::MAX_LIST_ITEMS, 100, "the documented cap");
    assert_eq!(env.richpanel.tags[..2], ["tag-0", "tag-1"]);
}

#[test]
fn re_firing_a_rule_after_the_ticket_was_tagged_and_assigned_keeps_the_payload_hash() {
    let first = rp(
        r#"{"ticket_id":"T-3","message_id":"m-1","message":"where is my parcel?","tags":[]}"#,
        at(T0),
    )
    .expect("first");
    // The worker tagged and assigned the ticket; a rule fires again.
    let refired = rp(
        r#"{"ticket_id":"T-3","message_id":"m-1","message":"where is my parcel?",
            "tags":["auto-replied","shipping"],"assignee_id":"u-7"}"#,
        at(T0) + Duration::minutes(3),
    )
    .expect("refired");
    assert_eq!(first.event_id, refired.event_id);
    assert_eq!(first.payload_hash(), refired.payload_hash());
    // The message itself is covered.
    let edited = rp(
        r#"{"ticket_id":"T-3","message_id":"m-1","message":"where is my refund?"}"#,
        at(T0),
    )
    .expect("edited");
    assert_ne!(first.payload_hash(), edited.payload_hash());
}

#[test]
fn a_broken_json_body_with_a_message_id_leaves_the_message_to_be_fetched() {
    // Not JSON even after repair: only the ticket id and message id are read.
    let body = "{\"ticket_id\": \"T-4\", \"message_id\": \"m-9\", \"message\": \"he wrote \"stop\", then {left\", \"trigger\": x}";
    let env = rp(body, at(T0)).expect("partial");
    assert!(
        left_to_the_ticket_fetch(&env),
        "an empty message must not claim m-9: {env:?}"
    );
    assert_ne!(env.event_id.as_str(), "evt:rp:T-4:m-9");
    // Stable across retries (it names the message, not the time).
    let retry = rp(body, at(T0) + Duration::minutes(5)).expect("retry");
    assert_eq!(retry.event_id, env.event_id);
}

#[test]
fn a_text_only_body_retried_across_a_minute_boundary_is_not_a_second_message() {
    // No message id, no created_at: only the delivery time tells two
    // deliveries apart, and a retry has another one.
    let body = r#"{"ticket_id":"T-5","message":"is anyone there?"}"#;
    let first = rp(body, at("2025-12-21T10:00:59Z")).expect("first");
    let retry = rp(body, at("2025-12-21T10:01:01Z")).expect("retry");
    for env in [&first, &retry] {
        assert!(
            left_to_the_ticket_fetch(env),
            "a text-only body must leave the message to the ticket's message list: {env:?}"
        );
    }
    // With the sender's created_at the text is kept: retries carry the same one.
    let timed =
        r#"{"ticket_id":"T-5","message":"is anyone there?","created_at":"2025-12-21T10:00:58Z"}"#;
    let a = rp(timed, at("2025-12-21T10:00:59Z")).expect("a");
    let b = rp(timed, at("2025-12-21T10:01:01Z")).expect("b");
    assert_eq!(a.event_id, b.event_id);
    assert_eq!(a.message.text, "is anyone there?");
}

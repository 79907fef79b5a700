//! Richpanel HTTP target bodies: minimal and rich templates, aliases,
//! unescaped bodies, and the errors an operator sees.
mod common;

use chrono::Duration;
use common::{T0, at, rp};
use envelope::{Channel, NormalizeConfig, Recovery, SourceKind, normalize_richpanel};

#[test]
fn minimal_bodies_from_several_rules_collapse_into_one_event() {
    let a = rp(r#"{"ticket_id":"123_acme_9","ticket_url":"https://app.richpanel.com/123_acme_9","trigger":"new_message"}"#, at(T0)).expect("a");
    let b = rp(r#"{"trigger":"vip_rule","ticket_id":"123_acme_9","ticket_url":"https://app.richpanel.com/123_acme_9"}"#, at(T0) + Duration::seconds(30)).expect("b");
    assert_eq!(a.event_id, b.event_id);
    assert_eq!(
        a.payload_hash(),
        b.payload_hash(),
        "the trigger name is not part of the payload"
    );
    assert_eq!(a.event_id.as_str(), "evt:rp:123_acme_9:news:1766311200");
    assert_eq!(a.conversation_id.as_str(), "123_acme_9");
    assert_eq!(a.message.text, "");
    assert_eq!(a.meta.source, SourceKind::RichpanelHttpTarget);
    // The next bucket is new news.
    let later = rp(
        r#"{"ticket_id":"123_acme_9"}"#,
        at(T0) + Duration::seconds(60),
    )
    .expect("later");
    assert_ne!(later.event_id, a.event_id);
}

#[test]
fn rich_body_fills_every_field() {
    let body = r#"{"ticket_id": 42, "ticket_url": "https://app.richpanel.com/42", "trigger": "t",
        "message_id": "c-1", "message": "Where is my parcel?", "channel": "Instagram",
        "customer_email": "jane@example.com", "customer_phone": "+1 555 123 4567", "customer_id": "cus_9",
        "created_at": "2025-12-21T09:59:00.123Z", "tags": ["vip", "shipping"], "assignee_id": "u-7"}"#;
    let env = rp(body, at(T0)).expect("rich");
    assert_eq!(env.event_id.as_str(), "evt:rp:42:c-1");
    assert_eq!(env.channel, Channel::Social);
    assert_eq!(env.customer.email.as_deref(), Some("jane@example.com"));
    assert_eq!(env.customer.phone.as_deref(), Some("+1 555 123 4567"));
    assert_eq!(env.customer.id.as_deref(), Some("cus_9"));
    assert_eq!(env.message.text, "Where is my parcel?");
    assert_eq!(env.message.created_at, Some(at("2025-12-21T09:59:00.123Z")));
    assert_eq!(env.richpanel.tags, ["vip", "shipping"]);
    assert_eq!(env.richpanel.assignee_id.as_deref(), Some("u-7"));
    assert_eq!(env.meta.recovery, None);
}

#[test]
fn text_without_message_id_hashes_text_and_created_at_bucket() {
    let a = rp(
        r#"{"ticket_id":"T","message":"hello  there\n","created_at":"2025-12-21T09:00:00Z"}"#,
        at(T0),
    )
    .expect("a");
    let b = rp(
        r#"{"created_at":"2025-12-21T09:00:30Z","message":"hello there","ticket_id":"T"}"#,
        at(T0) + Duration::hours(1),
    )
    .expect("b");
    assert_eq!(
        a.event_id, b.event_id,
        "whitespace and delivery time do not change the id"
    );
    let c = rp(
        r#"{"ticket_id":"T","message":"hello there!","created_at":"2025-12-21T09:00:00Z"}"#,
        at(T0),
    )
    .expect("c");
    assert_ne!(a.event_id, c.event_id);
}

#[test]
fn configured_aliases_are_used() {
    let cfg = NormalizeConfig::default()
        .with_alias("ticket_id", "conv.ref")
        .with_alias("message", "msg");
    let env = normalize_richpanel(
        br#"{"conv":{"ref":"R-1"},"message_id":"m-1","msg":"hi"}"#,
        &cfg,
        at(T0),
    )
    .expect("aliased");
    assert_eq!(env.conversation_id.as_str(), "R-1");
    assert_eq!(env.message.text, "hi");
    // The default aliases include a nested ticket object.
    let env = rp(r#"{"ticket":{"id":"N-1","tags":["a"]}}"#, at(T0)).expect("nested");
    assert_eq!(env.conversation_id.as_str(), "N-1");
    assert_eq!(env.richpanel.tags, ["a"]);
}

#[test]
fn unescaped_text_is_repaired() {
    let body = "{\"ticket_id\": \"T-7\", \"message_id\": \"m-3\", \"message\": \"Hi,\nmy \"blue\" shoes\tare late\"}";
    let env = rp(body, at(T0)).expect("repaired");
    assert_eq!(env.meta.recovery, Some(Recovery::RepairedJson));
    assert_eq!(env.message.text, "Hi,\nmy \"blue\" shoes\tare late");
    assert_eq!(env.event_id.as_str(), "evt:rp:T-7:m-3");
}

#[test]
fn hopeless_body_with_a_ticket_id_still_yields_an_envelope() {
    let body =
        "{\"ticket_id\": \"T-8\", \"message\": \"he wrote \"stop\", then {left\", \"trigger\": x}";
    let env = rp(body, at(T0)).expect("partial");
    assert_eq!(env.meta.recovery, Some(Recovery::TicketIdOnly));
    assert_eq!(env.conversation_id.as_str(), "T-8");
    assert!(env.event_id.as_str().starts_with("evt:rp:T-8:news:"));
}

#[test]
fn errors_name_what_is_missing() {
    let err = rp(r#"{"ticket_url":"https://x","trigger":"t"}"#, at(T0)).expect_err("no ticket");
    assert_eq!(err.reason_code(), "missing_ticket_id");
    assert!(
        err.to_string()
            .starts_with("richpanel body: no ticket id found (looked for ticket_id, ticketId"),
        "{err}"
    );

    let err = rp("{\"message\": \"broken\n\"\"", at(T0)).expect_err("garbage");
    assert_eq!(err.reason_code(), "invalid_json");
    assert!(
        err.to_string().contains("no ticket id recoverable"),
        "{err}"
    );

    assert_eq!(
        rp("  ", at(T0)).expect_err("empty").reason_code(),
        "empty_body"
    );
    assert_eq!(
        rp("[1,2]", at(T0)).expect_err("array").reason_code(),
        "not_an_object"
    );
}

#[test]
fn long_text_is_truncated_and_recorded() {
    let cfg = NormalizeConfig {
        max_text_chars: 5,
        ..NormalizeConfig::default()
    };
    let env = normalize_richpanel(
        r#"{"ticket_id":"T","message_id":"m-1","message":"héllo wörld"}"#.as_bytes(),
        &cfg,
        at(T0),
    )
    .expect("env");
    assert_eq!(env.message.text, "héllo");
    assert!(env.message.truncated);
    assert_eq!(env.message.original_length, Some(11));
}

#[test]
fn odd_ticket_ids_still_give_sqs_valid_ids() {
    let long = "t".repeat(300);
    let env = rp(
        &format!(r#"{{"ticket_id":"{long} ünï","message_id":"m 1"}}"#),
        at(T0),
    )
    .expect("env");
    for id in [env.group_id(), env.dedup_id()] {
        assert!(
            id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()),
            "{id}"
        );
    }
}

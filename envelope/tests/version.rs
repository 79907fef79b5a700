//! Decoding stored envelopes: round trip, v0 upcast, future versions refused.
use chrono::Utc;
use envelope::{EnvelopeError, NormalizeConfig, Normalized, Source, SourceKind, decode, normalize};

#[test]
fn v1_round_trips() {
    let body = br#"{"ticket_id":"T1","message_id":"m1","message":"hi","tags":["a"]}"#;
    let Ok(Normalized::Envelope(env)) = normalize(
        Source::Richpanel,
        body,
        &NormalizeConfig::default(),
        Utc::now(),
    ) else {
        panic!("normalizes");
    };
    let back = decode(env.to_json().as_bytes()).expect("decodes");
    assert_eq!(back, env);
    assert_eq!(back.payload_hash(), env.payload_hash());
}

#[test]
fn v0_is_upcast() {
    let v0 = br#"{"schema_version":0,"id":"evt:rp:T1:m1","conversation":"T1",
        "received_at":"2025-12-21T00:00:00Z","source":"email","text":"old text",
        "customer_email":"a@example.com","channel":"email"}"#;
    let env = decode(v0).expect("upcast");
    assert_eq!(env.schema_version, 1);
    assert_eq!(env.event_id.as_str(), "evt:rp:T1:m1");
    assert_eq!(env.conversation_id.as_str(), "T1");
    assert_eq!(env.message.text, "old text");
    assert_eq!(env.customer.email.as_deref(), Some("a@example.com"));
    assert_eq!(env.meta.source, SourceKind::EmailRaw);
    // Re-encoding writes the current version.
    assert!(env.to_json().contains("\"schema_version\":1"));
}

#[test]
fn v0_without_required_fields_is_a_typed_error() {
    let err = decode(br#"{"schema_version":0,"conversation":"T1"}"#).expect_err("bad v0");
    assert!(
        matches!(err, EnvelopeError::Upcast { from: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("id"), "{err}");
}

#[test]
fn future_version_is_rejected_loudly() {
    let err = decode(br#"{"schema_version":2,"event_id":"x"}"#).expect_err("future");
    assert!(
        matches!(
            err,
            EnvelopeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "envelope: schema_version 2 is newer than supported (1)"
    );
    assert!(matches!(
        decode(br#"{"event_id":"x"}"#),
        Err(EnvelopeError::MissingVersion)
    ));
    assert!(matches!(decode(b"nope"), Err(EnvelopeError::Json(_))));
}

#[test]
fn unknown_enum_values_and_extra_fields_in_v1_still_decode() {
    let json = br#"{"schema_version":1,"event_id":"e","received_at":"2025-12-21T00:00:00Z",
      "conversation_id":"c","channel":"carrier_pigeon","customer":{"email":null,"phone":null,"id":null},
      "message":{"id":null,"created_at":null,"text":"","attachments":[{"type":"video","url":null,"size_bytes":1}]},
      "richpanel":{"tags":[],"assignee_id":null},
      "email":{"message_id":null,"from":null,"to":[],"cc":[],"subject":null,"in_reply_to":null,"references":[]},
      "meta":{"attempt":2,"source":"email_raw"},"added_later":true}"#;
    let env = decode(json).expect("decodes");
    assert_eq!(env.channel, envelope::Channel::Unknown);
    assert_eq!(
        env.message.attachments[0].kind,
        envelope::AttachmentKind::Other
    );
    assert_eq!(env.meta.attempt, 2);
}

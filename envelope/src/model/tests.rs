//! Unit tests of the envelope model: encoding, identity form, limits.
use super::*;

/// The hash's first definition: serde's output as a `Value`, minus the
/// fields outside the identity, keys sorted (and, since tags and
/// assignee left the identity, those two blanked).
fn reference(env: &Envelope, labels: Labels) -> String {
    let mut value = serde_json::to_value(env).expect("serializes");
    let obj = value.as_object_mut().expect("an object");
    obj.remove("received_at");
    obj.remove("meta");
    let rp = obj["richpanel"].as_object_mut().expect("an object");
    rp.remove("trigger");
    if let Labels::Blank = labels {
        rp.insert("tags".into(), serde_json::json!([]));
        rp.insert("assignee_id".into(), serde_json::Value::Null);
    }
    let mut out = Vec::new();
    crate::canonical::write_value(&value, &mut out).expect("writes");
    String::from_utf8(out).expect("utf-8")
}

fn direct(env: &Envelope, labels: Labels) -> String {
    let mut out = Vec::new();
    env.write_identity(&mut out, labels).expect("writes");
    String::from_utf8(out).expect("utf-8")
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

fn sparse() -> Envelope {
    Envelope {
        schema_version: SCHEMA_VERSION,
        event_id: EventId::new("evt:rp:1:m"),
        received_at: DateTime::UNIX_EPOCH,
        conversation_id: ConversationId::new("1"),
        channel: Channel::Unknown,
        customer: Customer::default(),
        message: Message::default(),
        richpanel: RichpanelInfo::default(),
        email: EmailInfo::default(),
        meta: Meta::default(),
        blob: None,
    }
}

/// Every optional member present: the skipped-when-empty ones too.
fn full() -> Envelope {
    let attachment = |name: Option<String>, content_type: Option<String>| Attachment {
        kind: AttachmentKind::classify(content_type.as_deref(), name.as_deref()),
        url: some("https://cdn.example/a?x=1&y=\"2\""),
        size_bytes: Some(1026),
        name,
        content_type,
    };
    Envelope {
        channel: Channel::Email,
        customer: Customer {
            email: some("jane@example.com"),
            phone: some("+1 555 123 4567"),
            id: some("cus_9"),
        },
        message: Message {
            id: some("m-1"),
            created_at: Some(DateTime::UNIX_EPOCH + chrono::Duration::milliseconds(1_234)),
            text: "Größe 😀 \"quoted\" \\ tab\t\u{1} <b>".into(),
            truncated: true,
            original_length: Some(99_999),
            attachments: vec![
                attachment(some("a.pdf"), some("application/pdf")),
                attachment(None, None),
            ],
        },
        richpanel: RichpanelInfo {
            tags: vec!["vip".into(), "ship\"ping".into()],
            assignee_id: some("u-7"),
            ticket_id: some("42"),
            ticket_url: some("https://app.richpanel.com/42"),
            trigger: some("new_message"),
        },
        email: EmailInfo {
            message_id: some("abc@mail"),
            from: some("jane@example.com"),
            to: vec!["a@b".into(), "c@d".into()],
            cc: vec!["e@f".into()],
            subject: some("Re: \u{7f} order"),
            in_reply_to: some("x@y"),
            references: vec!["x@y".into()],
        },
        meta: Meta {
            attempt: 3,
            source: SourceKind::SesSns,
            recovery: Some(Recovery::RepairedJson),
        },
        blob: Some(BlobRef {
            bucket: "mail".into(),
            key: "in/abc".into(),
        }),
        ..sparse()
    }
}

#[test]
fn direct_canonical_form_matches_the_value_based_one() {
    for env in [sparse(), full()] {
        for labels in [Labels::Blank, Labels::AsSent] {
            assert_eq!(direct(&env, labels), reference(&env, labels));
        }
    }
}

#[test]
fn hash_ignores_delivery_fields_only() {
    let env = full();
    let mut redelivered = env.clone();
    redelivered.received_at = DateTime::UNIX_EPOCH + chrono::Duration::days(1);
    redelivered.meta = Meta::default();
    redelivered.richpanel.trigger = some("other_rule");
    redelivered.richpanel.tags.push("auto-replied".into());
    redelivered.richpanel.assignee_id = some("u-8");
    assert_eq!(env.payload_hash(), redelivered.payload_hash());
    let mut edited = env.clone();
    edited.message.attachments[1].name = some("b.png");
    assert_ne!(env.payload_hash(), edited.payload_hash());
}

#[test]
fn legacy_hash_exists_only_where_the_definitions_differ() {
    let bare = sparse();
    assert_eq!(bare.legacy_payload_hash(), None);
    let labelled = full();
    let legacy = labelled.legacy_payload_hash().expect("tags and assignee");
    assert_ne!(legacy, labelled.payload_hash());
    let mut unlabelled = labelled.clone();
    unlabelled.richpanel.tags.clear();
    unlabelled.richpanel.assignee_id = None;
    assert_eq!(unlabelled.payload_hash(), labelled.payload_hash());
}
